"""Images into a model: from memory (numpy arrays in any pixel format and row stride, PIL images) the same as from
a file, bit for bit, through the runtime's one preprocessing (C++ PreprocessImage); the resize modes export records
(stretch, crop, letterbox) against torchvision's Resize+CenterCrop and ultralytics' LetterBox; mean/std in 0..1
units refused with the fix."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.runtime import native

from conftest import run_deploy_app
from nets import TinyConvNet

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def export(tmp_path_factory, name, shape, resize, color="RGB"):
    work = tmp_path_factory.mktemp(name)
    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(work / "m.onnx"), shape)
    pre = tvm_ncnn.Preprocess(mean=MEAN, std=STD, color=color, resize=resize)
    return tvm_ncnn.export(onnx_path, work / "m.so", preprocess=pre).path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny conv nets whose metadata says how images come in; one export each."""
    return {
        "stretch": tvm_ncnn.load(export(tmp_path_factory, "stretch", (1, 3, 24, 32), "stretch"), threads=1),
        "bgr_crop": tvm_ncnn.load(export(tmp_path_factory, "bgr_crop", (1, 3, 24, 32), "crop:0.9", "BGR"), threads=1),
        "crop": tvm_ncnn.load(export(tmp_path_factory, "crop", (1, 3, 56, 56), "crop"), threads=1),
        "letterbox": tvm_ncnn.load(export(tmp_path_factory, "letterbox", (1, 3, 48, 64), "letterbox"), threads=1),
        "topleft": tvm_ncnn.load(export(tmp_path_factory, "topleft", (1, 3, 48, 64), "letterbox:114:topleft"),
                                 threads=1),
    }


def photo(width=155, height=100, seed=0) -> np.ndarray:
    """A smooth picture with some noise (bilinear resizes have something to interpolate), RGB uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([128 + 100 * np.sin(x / 9 + c) * np.cos(y / 7 - c) for c in range(3)], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).round().astype(np.uint8)


def normalize(rgb_hwc: np.ndarray, color="RGB") -> np.ndarray:
    """The reference's (pixel - mean) / std, NCHW float32, in the model's channel order."""
    x = (rgb_hwc.astype(np.float32) - np.float32(MEAN)) / np.float32(STD)
    x = x.transpose(2, 0, 1)[None]
    return x[:, ::-1] if color == "BGR" else x


def levels(got: np.ndarray, ref: np.ndarray) -> float:
    """The largest difference in pixel levels (0..255 units) between two normalized inputs (to 1e-3: float32)."""
    return round(float((np.abs(got - ref) * np.float32(STD).reshape(1, 3, 1, 1)).max()), 3)


@pytest.mark.parametrize("name", ["stretch", "bgr_crop", "crop", "letterbox"])
def test_pixels_in_memory_equal_the_file(models, tmp_path, name):
    """A camera frame and the same pixels saved as PNG give the same input, bit for bit, in every pixel format, at
    any row stride, from numpy or PIL (PNG is lossless, so both hold the same decoded pixels)."""
    model = models[name]
    rgb = photo()
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    want = model.load_image(tmp_path / "photo.png")
    assert want.shape == tuple(model.inputs[0]["shape"]) and want.dtype == np.float32

    frame = np.zeros((130, 200, 4), np.uint8)  # a larger frame; the picture is a view into it (row stride 800)
    frame[10:110, 20:175, :3] = rgb[:, :, ::-1]
    frame[10:110, 20:175, 3] = 7  # X of XRGB8888: ignored
    gray = rgb[:, :, 1]
    sources = {
        "numpy RGB": (rgb, None),
        "numpy BGR": (np.ascontiguousarray(rgb[:, :, ::-1]), "BGR"),
        "numpy RGBA": (np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), None),
        "BGRA view of a frame": (frame[10:110, 20:175], "BGRA"),
        "BGR view of a frame (pixel stride 4: copied)": (frame[10:110, 20:175, :3], "BGR"),
        "flipped twice": (rgb[::-1][::-1], None),
        "read-only": (np.frombuffer(rgb.tobytes(), np.uint8).reshape(rgb.shape), None),
    }
    for what, (pixels, fmt) in sources.items():
        got = model.load_image(pixels, pixel_format=fmt)
        assert np.array_equal(got, want), what
    assert np.array_equal(model.load_image(Image.open(tmp_path / "photo.png")), want)
    assert np.array_equal(model.load_image(Image.fromarray(rgb).convert("P").convert("RGB")), model.load_image(
        np.asarray(Image.fromarray(rgb).convert("P").convert("RGB"))))
    # gray: one channel, as the file decoder replicates it
    Image.fromarray(gray).save(tmp_path / "gray.png")
    want_gray = model.load_image(tmp_path / "gray.png")
    assert np.array_equal(model.load_image(gray), want_gray)
    assert np.array_equal(model.load_image(Image.fromarray(gray)), want_gray)
    assert np.array_equal(model.load_image(gray[:, :, None], pixel_format="GRAY"), want_gray)
    # and the model runs on it
    assert np.isfinite(model(want)[0]).all()


def test_deploy_app_preprocesses_as_python(models, tmp_path):
    """deploy_app, Python and C++ apps share one implementation: the same image, the same output."""
    model = models["crop"]
    Image.fromarray(photo(203, 131, seed=4)).save(tmp_path / "p.bmp")
    done = run_deploy_app(model.path, str(tmp_path / "p.bmp"), "--output", str(tmp_path / "y.npy"), "--repeat", "1")
    assert "std 58.395,57.12,57.375, resize crop:0.875)" in done.stdout, done.stdout
    assert np.array_equal(np.load(tmp_path / "y.npy"), model(model.load_image(tmp_path / "p.bmp"))[0])


def torchvision_functional():
    # The PyPI torchvision wheel cannot register its C++ ops beside the CPU torch (DESIGN.md); its Python
    # transforms need none of them.
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional

    return functional, InterpolationMode


@pytest.mark.parametrize("size", [(155, 100), (100, 155), (64, 64), (301, 57)])
def test_crop_is_torchvision_resize_and_center_crop(models, size):
    """crop (0.875) is timm's evaluation transform: Resize(floor(56 / 0.875) = 64) + CenterCrop(56). The geometry is
    torchvision's exactly (sizes, the centre cut's corner with its half-to-even rounding: 155x100 -> 99x64, left 21.5
    -> 22). Pixels: bilinear without antialiasing -- torchvision's with antialias=False to 1 level (ncnn interpolates
    in 11-bit fixed point, torchvision in float: about a fifth of the pixels are one level apart), and OpenCV's
    INTER_LINEAR (the same fixed point) of the same size cut at the same corner to 1 level in about 0.1% of the
    pixels, equal elsewhere. timm itself resizes PIL images with antialiasing, which no plain bilinear matches when
    shrinking by more than about 2x."""
    import torch

    F, InterpolationMode = torchvision_functional()  # before timm, which imports torchvision
    import timm.data

    timm_eval = timm.data.create_transform(input_size=56, crop_pct=0.875, interpolation="bilinear")
    assert timm_eval.transforms[0].size == 64 and list(timm_eval.transforms[1].size) == [56, 56]

    model = models["crop"]
    rgb = photo(*size, seed=1)
    chw = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    resized = F.resize(chw, [64], interpolation=InterpolationMode.BILINEAR, antialias=False)
    ref = F.center_crop(resized, [56, 56]).permute(1, 2, 0).numpy()
    got = model.load_image(rgb)
    assert levels(got, normalize(ref)) <= 1.0
    assert np.abs(got - normalize(ref)).mean() * 58 < 0.5  # most pixels equal: no shifted geometry

    t = model.image_transform(rgb)
    assert (t.resized_width, t.resized_height) == (resized.shape[2], resized.shape[1])
    left, top = round((resized.shape[2] - 56) / 2), round((resized.shape[1] - 56) / 2)  # Python's round: to even
    assert (-t.offset_x, -t.offset_y) == (left, top)
    import cv2

    same_size = cv2.resize(rgb, (resized.shape[2], resized.shape[1]), interpolation=cv2.INTER_LINEAR)
    apart = np.abs(got - normalize(same_size[top:top + 56, left:left + 56])) * np.float32(STD).reshape(1, 3, 1, 1)
    assert apart.max() < 1.001 and (apart > 0.5).mean() < 0.01


@pytest.mark.parametrize("size", [(155, 100), (100, 155), (640, 480), (33, 200)])
def test_letterbox_is_ultralytics_letterbox(models, size):
    """letterbox is ultralytics' LetterBox(auto=False) for 48x64 (H x W): the same scale, the same padding (the odd
    pixel at the bottom/right), border 114, and the same pixels: its cv2.resize INTER_LINEAR is the fixed-point
    bilinear ncnn's resize is, so the inputs are equal exactly. The transform maps the image's corners back."""
    from ultralytics.data.augment import LetterBox

    model = models["letterbox"]
    bgr = np.ascontiguousarray(photo(*size, seed=2)[:, :, ::-1])  # ultralytics works on OpenCV's BGR
    ref = LetterBox(new_shape=(48, 64), auto=False, scaleup=True)(image=bgr)[:, :, ::-1]
    got = model.load_image(bgr, pixel_format="BGR")
    assert levels(got, normalize(ref)) == 0

    t = model.image_transform(bgr)
    border = np.all(ref == 114, axis=2)
    rows, cols = np.where(~border)
    assert (t.offset_y, t.offset_x) == (rows.min(), cols.min())
    assert (t.resized_height, t.resized_width) == (rows.max() + 1 - rows.min(), cols.max() + 1 - cols.min())
    assert np.allclose(t.to_image([t.offset_x, t.offset_x + t.resized_width], [t.offset_y, t.offset_y +
                       t.resized_height]), [[0, size[0]], [0, size[1]]])
    assert np.allclose(got[0, :, border], (114 - np.float32(MEAN)) / np.float32(STD), rtol=1e-6, atol=0)


def yolox_preproc(img, input_size, pad=114):
    """YOLOX's preproc (yolox/data/data_augment.py, as its README and ncnn's yolox example describe it), written
    here: r = min(H / h, W / w), cv2.resize to (int(w * r), int(h * r)) INTER_LINEAR, pasted at the top-left of an
    H x W canvas of `pad`; boxes are mapped back by dividing by r."""
    import cv2

    canvas = np.full((input_size[0], input_size[1], 3), pad, np.uint8)
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    w, h = int(img.shape[1] * r), int(img.shape[0] * r)
    canvas[:h, :w] = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return canvas, r


@pytest.mark.parametrize("size", [(155, 100), (100, 155), (640, 480), (33, 200), (64, 48)])
def test_letterbox_topleft_is_yolox_preproc(models, size):
    """letterbox:114:topleft is YOLOX's preproc: the same pixels exactly, the border only right and bottom, and
    the transform maps input coordinates back by dividing by YOLOX's r."""
    model = models["topleft"]
    assert model.info["preprocess"]["anchor"] == "topleft"
    rgb = photo(*size, seed=4)
    ref, r = yolox_preproc(rgb, (48, 64))
    got = model.load_image(rgb)
    assert levels(got, normalize(ref)) == 0
    t = model.image_transform(rgb)
    assert (t.offset_x, t.offset_y) == (0, 0) and t.scale_x == t.scale_y == r
    assert (t.resized_width, t.resized_height) == (int(size[0] * r), int(size[1] * r))
    x, y = t.to_image(np.array([10.0, 37.5]), np.array([5.0, 20.25]))
    assert np.allclose(x, np.array([10.0, 37.5]) / r) and np.allclose(y, np.array([5.0, 20.25]) / r)


def test_metadata_inspect_and_old_model_files(models, tmp_path):
    """Export records the mode (metadata format 2), inspect shows it; stretch is what every model.so did before
    the field existed: metadata format 1 without "resize" still loads and stretches, bit for bit as today's."""
    model = models["stretch"]
    meta = model.info
    assert meta["format_version"] == 3 and meta["preprocess"]["resize"] == "stretch"
    assert models["crop"].info["preprocess"] == {"mean": list(MEAN), "std": list(STD), "color": "RGB",
                                                 "resize": "crop", "crop_pct": 0.875}
    assert models["bgr_crop"].info["preprocess"]["crop_pct"] == 0.9
    assert models["letterbox"].info["preprocess"]["pad"] == 114
    for name, needle in [("crop", "resize     crop:0.875 (shorter side"), ("letterbox", "resize     letterbox:114 (fit whole, centred"),
                         ("topleft", "resize     letterbox:114:topleft (fit whole in the top-left"),
                         ("stretch", "resize     stretch")]:
        shown = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "inspect", models[name].path],
                               capture_output=True, text=True, timeout=300)
        assert shown.returncode == 0 and needle in shown.stdout, shown.stdout + shown.stderr
    Image.fromarray(photo()).save(tmp_path / "p.png")
    old = dict(meta, format_version=1)
    old["preprocess"] = {k: v for k, v in meta["preprocess"].items() if k != "resize"}
    tensor = native.get_function("tvm_ncnn.load_image")(str(tmp_path / "p.png"), json.dumps(old))
    assert np.array_equal(np.from_dlpack(tensor), model.load_image(tmp_path / "p.png"))


def test_bad_images_refused(models, tmp_path):
    model = models["stretch"]
    rgb = photo()
    cases = [
        (lambda: model.load_image(rgb.astype(np.float32) / 255), "must be uint8", "astype(np.uint8)"),
        (lambda: model.load_image(rgb, pixel_format="YUV"), "pixel_format 'YUV'", "RGB, BGR, RGBA, BGRA, GRAY"),
        (lambda: model.load_image(rgb, pixel_format="RGBA"), "RGBA has 4 channel(s)"),
        (lambda: model.load_image(rgb[:, :, :2]), "[100, 155, 2]"),
        (lambda: model.load_image(rgb[:0]), "[0,155,3]", "not an image size"),
        (lambda: model.load_image([[1, 2, 3]]), "not a list"),
        (lambda: model.load_image(tmp_path / "x.png", pixel_format="BGR"), "a file says its own format"),
        (lambda: model.load_image(Image.fromarray(rgb), pixel_format="BGR"), "PIL image says its own mode"),
    ]
    for call, *needles in cases:
        with pytest.raises(tvm_ncnn.ModelError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and all(n in message for n in needles), message


def test_mean_std_in_unit_range_refused(tmp_path):
    """--mean 0.485,0.456,0.406 is torchvision's 0..1 units; in pixel units it is a mistake: refused with the fix,
    before the slow export."""
    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(tmp_path / "m.onnx"), (1, 3, 24, 32))
    done = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "export", onnx_path, "-o", str(tmp_path / "m.so"),
                           "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and not (tmp_path / "m.so").exists()
    line = done.stderr.strip()
    assert "\n" not in line and "0..1 units" in line, line
    assert "--mean 123.675,116.28,103.53 --std 58.395,57.12,57.375" in line, line
    for mean, std, fix in [((0.5,) * 3, (0.5,) * 3, "--mean 127.5,127.5,127.5 --std 127.5,127.5,127.5"),
                           ((123.675, 116.28, 103.53), (0.229, 0.224, 0.225), "--std 58.395,57.12,57.375"),
                           ((0.485, 0.456, 0.406), (1, 1, 1), "--mean 123.675,116.28,103.53 --std 1,1,1")]:
        with pytest.raises(tvm_ncnn.ModelError, match="0..1 units") as err:
            tvm_ncnn.Preprocess(mean=mean, std=std)
        assert fix in str(err.value)
    tvm_ncnn.Preprocess()  # raw pixels: mean 0, std 1
    tvm_ncnn.Preprocess(mean=(127, 127, 127), std=(128, 128, 128))
    tvm_ncnn.Preprocess(mean=(0, 0, 0), std=(255, 255, 255))  # 0..1 inputs, written in pixel units


@pytest.mark.parametrize("spec,needle", [("squash", "not a resize mode"), ("crop:1.5", "from 0.01 to 1"),
                                         ("crop:abc", "crop:0.875"), ("letterbox:300", "0..255"),
                                         ("stretch:2", "takes no value"), ("letterbox:114:left", ":topleft"),
                                         ("letterbox:1:2:topleft", ":topleft")])
def test_bad_resize_refused(spec, needle):
    with pytest.raises(tvm_ncnn.ModelError, match=needle):
        tvm_ncnn.Preprocess(resize=spec)


def test_readme_camera_loop_runs(models, tmp_path, monkeypatch, capsys):
    """The README's picamera2 loop, word for word, on a stand-in camera that gives three B,G,R frames (picamera2's
    RGB888) and then stops the loop."""
    from test_readme import readme_block

    frames = [np.ascontiguousarray(photo(640, 480, seed=i)[:, :, ::-1]) for i in range(3)]

    class CameraStopped(Exception):
        pass

    class StandInCamera:
        def create_preview_configuration(self, main):
            assert main == {"size": (640, 480), "format": "RGB888"}
            return main

        def configure(self, config):
            pass

        def start(self):
            pass

        def capture_array(self):
            if not frames:
                raise CameraStopped
            return frames.pop(0)

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=StandInCamera))
    (tmp_path / "model.so").symlink_to(models["crop"].path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CameraStopped):
        exec(compile(readme_block("camera.py"), "README.md camera.py", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and all(len(line.split()) == 2 for line in printed), printed
