"""Images in memory for LoadedModel.load_image: a numpy array of pixels or a PIL image, handed as it is (no resize,
no conversion here) to the runtime's one preprocessing implementation (C++ PreprocessImage), which deploy_app and
image files go through too. ImageTransform: where the image landed in the model input."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError, last_line

# channels per pixel of each format the runtime takes (runtime.h PixelFormat)
PIXEL_FORMATS = {"RGB": 3, "BGR": 3, "RGBA": 4, "BGRA": 4, "GRAY": 1}
_DEFAULT_FORMAT = {1: "GRAY", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class ImageTransform:
    """Where an image landed in the model input (C++ ImageTransform), so that what the model finds there -- a
    detector's boxes -- maps back to the image: input = image * scale + offset, per axis, in continuous pixel
    coordinates (pixel i covers [i, i+1)). Letterbox: the offsets are the left/top padding; crop: minus the cut's
    left/top; stretch: 0."""

    image_width: int
    image_height: int
    resized_width: int
    resized_height: int
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    input_width: int = 0   # the tensor's W x H for this image (a dynamic input's follows the image)
    input_height: int = 0

    def to_image(self, x, y):
        """Input coordinates (numbers or numpy arrays) -> image coordinates."""
        return (np.asarray(x) - self.offset_x) / self.scale_x, (np.asarray(y) - self.offset_y) / self.scale_y


def _from_pil(image, pixel_format):
    if pixel_format is not None:
        raise ModelError(f"pixel_format={pixel_format!r} is for numpy arrays; a PIL image says its own mode "
                         f"({image.mode})")
    formats = {"RGB": "RGB", "RGBA": "RGBA", "L": "GRAY"}
    if image.mode not in formats:  # palette, CMYK, 16-bit, 1-bit, LA, YCbCr...: PIL knows how to make RGB of them
        image = image.convert("RGB")
    return np.array(image), formats.get(image.mode, "RGB")  # a copy: PIL's buffer is read-only


def pixels_of(image, pixel_format: str | None = None) -> tuple[np.ndarray, str]:
    """image (a numpy uint8 array [H, W, C] or [H, W], or a PIL image) -> (array, format) for the runtime. An
    array keeps its memory, at any row stride (a crop of a frame is not copied); pixel_format defaults to RGB for 3
    channels, RGBA for 4, GRAY for one."""
    if hasattr(image, "mode") and hasattr(image, "getbands"):  # PIL.Image.Image, without importing PIL
        return _from_pil(image, pixel_format)
    if not isinstance(image, np.ndarray):
        raise ModelError(f"an image is a path, a numpy uint8 array (H x W x 3) or a PIL image, not a "
                         f"{type(image).__name__}")
    if image.dtype != np.uint8:
        raise ModelError(f"image pixels must be uint8 (0..255), got {image.dtype} {list(image.shape)}: for floats in "
                         f"0..1 pass (x * 255).round().astype(np.uint8); load_image does the normalizing")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    channels = image.shape[2] if image.ndim == 3 else 1 if image.ndim == 2 else 0
    fmt = pixel_format or _DEFAULT_FORMAT.get(channels)
    if image.ndim not in (2, 3) or fmt is None or PIXEL_FORMATS.get(fmt) != channels:
        want = f"one of {', '.join(PIXEL_FORMATS)}" if fmt not in PIXEL_FORMATS else \
            f"{fmt} has {PIXEL_FORMATS[fmt]} channel(s)"
        raise ModelError(f"image array of shape {list(image.shape)} with pixel_format {fmt!r}: expected H x W x C "
                         f"(or H x W gray), {want}")
    # The runtime reads rows of contiguous pixels at any row stride; anything else (a flipped or subsampled view,
    # a read-only buffer, which DLPack cannot pass) is copied once here.
    packed = channels if image.ndim == 3 else 1
    if not image.flags.writeable or image.strides[1] != packed or (image.ndim == 3 and image.strides[2] != 1) \
            or image.strides[0] < image.shape[1] * packed:
        image = np.ascontiguousarray(image).copy() if not image.flags.writeable else np.ascontiguousarray(image)
    return image, fmt


def size_of(image) -> tuple[int, int]:
    """(width, height) of a (width, height) pair, a numpy array of pixels or a PIL image."""
    if hasattr(image, "mode") and hasattr(image, "size"):
        return tuple(image.size)
    if isinstance(image, np.ndarray) and image.ndim in (2, 3):
        return image.shape[1], image.shape[0]
    if isinstance(image, (tuple, list)) and len(image) == 2:
        return int(image[0]), int(image[1])
    raise ModelError(f"image_transform takes (width, height), a numpy array of pixels or a PIL image, not "
                     f"{type(image).__name__}")


def preprocess(image, metadata: dict | str, pixel_format: str | None = None) -> tuple[np.ndarray, ImageTransform]:
    """(input tensor, ImageTransform) of an image as a model.so with this metadata (read_metadata(), or its JSON)
    preprocesses it -- the runtime's PreprocessImage, without loading the model (a model.so for another CPU, or
    the metadata alone). image: a numpy uint8 array of pixels or a PIL image, as LoadedModel.load_image takes."""
    import tvm_ffi

    from . import native

    pixels, fmt = pixels_of(image, pixel_format)
    doc = metadata if isinstance(metadata, str) else json.dumps(metadata)
    try:
        done = native.get_function("tvm_ncnn.preprocess_pixels")(tvm_ffi.from_dlpack(pixels), fmt, doc)
    except Exception as err:
        raise ModelError(last_line(err)) from None
    t = done["transform"]
    fields = {k: (float(v) if k.startswith(("scale", "offset")) else int(v)) for k, v in t.items()}
    return np.from_dlpack(done["tensor"]).copy(), ImageTransform(**fields)
