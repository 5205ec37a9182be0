"""Issue #7, part 2: inputs. Images that are unreadable, corrupt, empty, cut short, of the wrong kind or huge;
grayscale and RGBA images (converted, documented); .npy tensors of the wrong shape or dtype or broken;
wrong arguments to the Python model. Each either works as the README says or fails with one clear line."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from support import assert_model_error, assert_one_line_error, deploy_app, python_cases
from reliability_fixtures import models  # noqa: F401  (the fixture)


def photo(size=(24, 20)) -> np.ndarray:
    """A smooth RGB test picture (uint8, HxWx3): gradients, so resizing and channel order both matter."""
    h, w = size[1], size[0]
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // (w + h)], -1).astype(np.uint8)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds none: enough to test the size limit."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IEND", b""))


def bmp_header_only(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def jpeg_header_only(width: int, height: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 12, 3) + b"\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return b"\xff\xd8" + sof + sos + b"\x00" * 16 + b"\xff\xd9"


@pytest.fixture
def classifier(models):
    return str(models["classifier"]["so"])


def run_image(model, image, *extra):
    return deploy_app(model, image, "--repeat", "1", *extra)


def output_for(model, image, tmp_path, name):
    out = tmp_path / f"{name}.npy"
    done = run_image(model, image, "--output", out)
    assert done.returncode == 0, done.describe()
    return np.load(out)


# ---- images that fail

def test_missing_and_directory_image(classifier, tmp_path):
    assert_one_line_error(run_image(classifier, tmp_path / "nope.jpg"), "nope.jpg", "no such file", exit_code=1)
    (tmp_path / "folder.png").mkdir()
    assert_one_line_error(run_image(classifier, tmp_path / "folder.png"), "folder.png", "directory", exit_code=1)


def test_unreadable_image(classifier, tmp_path):
    import os

    path = tmp_path / "secret.png"
    Image.fromarray(photo()).save(path)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: a FIFO is another file nobody can decode
        path.unlink()
        os.mkfifo(path)
        assert_one_line_error(run_image(classifier, path), "secret.png", "not a regular file", exit_code=1)
    else:
        assert_one_line_error(run_image(classifier, path), "secret.png", "not readable", exit_code=1)


def test_empty_image(classifier, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert_one_line_error(run_image(classifier, tmp_path / "empty.jpg"), "empty.jpg", "empty file", exit_code=1)


def test_not_an_image(classifier, tmp_path, models):
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes())
    assert_one_line_error(run_image(classifier, tmp_path / "noise.png"), "noise.png", "not a JPEG, PNG or BMP",
                          exit_code=1)
    npy_as_png = tmp_path / "tensor.png"
    npy_as_png.write_bytes(models["x"].read_bytes())
    assert_one_line_error(run_image(classifier, npy_as_png), "tensor.png", "not a JPEG, PNG or BMP", exit_code=1)


@pytest.mark.parametrize("ext", [".gif", ".txt", ".jpg.bak", ""])
def test_wrong_extension(classifier, tmp_path, ext):
    path = tmp_path / f"picture{ext}"
    Image.fromarray(photo()).save(path, format="PNG")
    assert_one_line_error(run_image(classifier, path), f"picture{ext}", ".jpg/.jpeg/.png/.bmp image or a .npy",
                          exit_code=2)


def test_content_decides_the_format(classifier, tmp_path):
    """A PNG named .jpg is read as the PNG it is (the extension only says "an image")."""
    Image.fromarray(photo()).save(tmp_path / "real.png")
    Image.fromarray(photo()).save(tmp_path / "named.jpg", format="PNG")
    np.testing.assert_array_equal(output_for(classifier, tmp_path / "named.jpg", tmp_path, "a"),
                                  output_for(classifier, tmp_path / "real.png", tmp_path, "b"))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP"])
def test_corrupt_image(classifier, tmp_path, fmt):
    """A valid header with broken data after it: refused, never decoded into a silently gray picture."""
    path = tmp_path / f"broken.{fmt.lower()}"
    Image.fromarray(photo((64, 64))).save(path, format=fmt)
    data = bytearray(path.read_bytes())
    if fmt == "BMP":
        data = data[: len(data) // 2]  # rows missing
        expect = "truncated BMP"
    elif fmt == "JPEG":
        data = data[: len(data) * 2 // 3]  # cut inside the scan, before the end-of-image marker
        expect = "truncated JPEG"
    else:
        idat = data.index(b"IDAT")
        data[idat + 8:idat + 40] = b"\xa5" * 32  # compressed pixels garbled
        expect = "cannot decode the PNG"
    path.write_bytes(bytes(data))
    assert_one_line_error(run_image(classifier, path), path.name, expect, exit_code=1)


@pytest.mark.parametrize("fmt,make", [("png", png_header_only), ("bmp", bmp_header_only), ("jpg", jpeg_header_only)])
def test_huge_image_refused_before_decoding(classifier, tmp_path, fmt, make):
    """20000 x 20000 (400 megapixels, 1.2 GB decoded): refused from the header, in milliseconds."""
    path = tmp_path / f"huge.{fmt}"
    path.write_bytes(make(20000, 20000))
    line = assert_one_line_error(run_image(classifier, path, "--json"), "huge", "20000x20000",
                                 "100 megapixel limit", exit_code=1)
    assert fmt.upper().replace("JPG", "JPEG") in line or "pixels" in line


# ---- images that work: other channel layouts are converted (README "Errors and limits")

def test_grayscale_image_is_replicated_to_rgb(classifier, tmp_path):
    gray = photo()[:, :, 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "gray_as_rgb.png")
    np.testing.assert_array_equal(output_for(classifier, tmp_path / "gray.png", tmp_path, "g"),
                                  output_for(classifier, tmp_path / "gray_as_rgb.png", tmp_path, "r"))


def test_rgba_image_drops_alpha(classifier, tmp_path):
    rgb = photo()
    alpha = np.full(rgb.shape[:2] + (1,), 77, np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], -1), mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(output_for(classifier, tmp_path / "rgba.png", tmp_path, "a"),
                                  output_for(classifier, tmp_path / "rgb.png", tmp_path, "b"))


def test_tiny_and_odd_sized_images_are_resized(classifier, tmp_path):
    for size in ((1, 1), (1, 300), (257, 3)):
        Image.fromarray(photo(size)).save(tmp_path / "odd.png")
        y = output_for(classifier, tmp_path / "odd.png", tmp_path, "odd")
        assert y.shape == (1, 10) and np.isfinite(y).all()


def test_python_load_image_errors(classifier, tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "huge.png").write_bytes(png_header_only(20000, 20000))
    Image.fromarray(photo()).save(tmp_path / "fine.png")
    empty, huge, fine = python_cases([{"op": "image", "path": classifier, "image": str(tmp_path / name)}
                                      for name in ("empty.png", "huge.png", "fine.png")])
    assert_model_error(empty, "empty.png", "empty file")
    assert_model_error(huge, "huge.png", "100 megapixel limit")
    assert fine["ok"] and fine["shape"] == [1, 3, 16, 16], fine


# ---- .npy tensors

def test_npy_wrong_shape_and_dtype(classifier, tmp_path):
    np.save(tmp_path / "small.npy", np.zeros((1, 3, 8, 8), np.float32))
    np.save(tmp_path / "double.npy", np.zeros((1, 3, 16, 16), np.float64))
    np.save(tmp_path / "flat.npy", np.zeros((768,), np.float32))
    for name, got in (("small.npy", "[1,3,8,8] float32"), ("double.npy", "[1,3,16,16] float64"),
                      ("flat.npy", "[768] float32")):
        assert_one_line_error(run_image(classifier, tmp_path / name), name, got, "expects [1,3,16,16] float32",
                              exit_code=1)


def test_npy_broken_files(classifier, tmp_path):
    x = np.zeros((1, 3, 16, 16), np.float32)
    np.save(tmp_path / "good.npy", x)
    good = (tmp_path / "good.npy").read_bytes()
    cases = {
        "empty.npy": (b"", "bad magic"),
        "text.npy": (b"just some text, not numpy\n", "bad magic"),
        "cut.npy": (good[:-100], "truncated"),
        "header_cut.npy": (good[:40], "truncated"),
    }
    for name, (data, expect) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert_one_line_error(run_image(classifier, tmp_path / name), name, expect, exit_code=1)
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.zeros((1, 3, 16, 2), np.float32)))
    assert_one_line_error(run_image(classifier, tmp_path / "fortran.npy"), "fortran.npy", "Fortran", exit_code=1)
    np.save(tmp_path / "big_endian.npy", x.astype(">f4"))
    assert_one_line_error(run_image(classifier, tmp_path / "big_endian.npy"), "big_endian.npy", "big-endian",
                          exit_code=1)
    # A header that claims a terabyte tensor in a file of 200 bytes: refused before any allocation.
    huge = good.replace(b"(1, 3, 16, 16)", b"(99999, 99999)", 1)
    (tmp_path / "claims_huge.npy").write_bytes(huge)
    assert_one_line_error(run_image(classifier, tmp_path / "claims_huge.npy"), "claims_huge.npy", exit_code=1)


def test_python_call_errors(classifier):
    results = python_cases([
        {"op": "call", "path": classifier, "shape": [1, 3, 8, 8], "dtype": "float32"},
        {"op": "call", "path": classifier, "shape": [1, 3, 16, 16], "dtype": "float64"},
        {"op": "call", "path": classifier, "shape": [], "dtype": "float32"},
    ])
    # The runtime's check (runtime.h CheckInput), in the words deploy_app uses too.
    assert_model_error(results[0], "input", "expects [1,3,16,16] float32", "got [1,3,8,8] float32")
    assert_model_error(results[1], "expects [1,3,16,16] float32", "got [1,3,16,16] float64", "x.astype(np.float32)")
    assert_model_error(results[2], "expects [1,3,16,16] float32", "got [] float32")
