"""Preprocess: how deploy_app, load_image and C++ PreprocessImage turn an image into the model's input, as stored in
model.so's metadata (runtime/FORMAT.md "preprocess"). The runtime applies it; this module only checks and records
it, and refuses the usual mistakes early: mean/std written in 0..1 units, an unknown resize mode."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError

RESIZE_MODES = ("stretch", "crop", "letterbox", "height", "limit")  # runtime/src/meta/tables.h kResizeModes
LETTERBOX_ANCHORS = ("center", "topleft")  # where the resized image sits: ultralytics centres, YOLOX top-left
LIMIT_TYPES = ("min", "max")  # limit: the short side up to size / the long side down to it (PaddleOCR limit_type)
# The sizes of a dynamic input's rule (runtime.h Preprocess): the resize group's numbers beside the mode.
SIZE_FIELDS = ("size", "stride", "min_width", "max_width")
DEFAULT_CROP_PCT = 0.875  # timm's default (224 from 256)
DEFAULT_PAD = 114         # ultralytics' letterbox gray
MIN_CROP_PCT = 0.01       # the runtime's bound (image/preprocess.cc kMinCropPct)


def parse_resize(spec: str) -> dict:
    """'stretch' | 'crop[:PCT]' | 'letterbox[:PAD][:topleft]' -> the metadata's fields, e.g. {"resize": "crop",
    "crop_pct": 0.875}. PCT: the share of the resized image the centre crop keeps (0.01..1); PAD: the border's pixel
    value; topleft: the image in the top-left corner, padding right and bottom (YOLOX), instead of centred."""
    mode, _, arg = str(spec).partition(":")
    usage = ("use stretch, crop[:PCT] (e.g. crop:0.875), letterbox[:PAD][:topleft] (e.g. letterbox:114, "
             "letterbox:114:topleft), height[:PAD] or limit[:min|max] (the last two for a dynamic input)")
    if mode not in RESIZE_MODES:
        raise ModelError(f"resize '{spec}' is not a resize mode: {usage}")
    if mode == "stretch":
        if arg:
            raise ModelError(f"resize '{spec}': stretch takes no value; {usage}")
        return {"resize": "stretch"}
    if mode == "crop":
        try:
            pct = float(arg) if arg else DEFAULT_CROP_PCT
        except ValueError:
            pct = -1.0
        if not MIN_CROP_PCT <= pct <= 1:
            raise ModelError(f"resize '{spec}': the crop share must be a number from {MIN_CROP_PCT} to 1 "
                             f"(e.g. crop:0.875, timm's crop_pct)")
        return {"resize": "crop", "crop_pct": pct}
    if mode == "height":
        try:
            pad = float(arg) if arg else None
        except ValueError:
            pad = -1.0
        if pad is not None and not 0 <= pad <= 255:
            raise ModelError(f"resize '{spec}': the padding must be a pixel value 0..255 (e.g. height:127.5), or "
                             f"none for zeros in the input as PaddleOCR pads")
        return {"resize": "height"} if pad is None else {"resize": "height", "pad": pad}
    if mode == "limit":
        if arg and arg not in LIMIT_TYPES:
            raise ModelError(f"resize '{spec}': the limit is min (short side up to the size) or max (long side "
                             f"down to it), e.g. limit:min")
        return {"resize": "limit", "limit": arg or "min"}
    parts = arg.split(":") if arg else []
    anchor = "center"
    if parts and parts[-1] in LETTERBOX_ANCHORS:
        anchor = parts.pop()
    try:
        pad = int(parts[0]) if parts and parts[0] else DEFAULT_PAD
    except ValueError:
        pad = -1
    if len(parts) > 1 or not 0 <= pad <= 255:
        raise ModelError(f"resize '{spec}': the letterbox border must be a whole pixel value 0..255, then "
                         f"optionally :topleft (e.g. letterbox:114, letterbox:114:topleft)")
    return {"resize": "letterbox", "pad": pad, "anchor": anchor}


def resize_text(pre: dict) -> str:
    """The resize fields of a metadata 'preprocess' as a person reads them (inspect, errors)."""
    mode = pre.get("resize", "stretch")
    sizes = ", ".join(f"{k} {pre[k]}" for k in SIZE_FIELDS if pre.get(k))
    if mode == "height":
        pad = f":{pre['pad']:g}" if "pad" in pre else ""
        fill = f"value {pre['pad']:g}" if "pad" in pre else "zeros in the input"
        return f"height{pad} (the input's height, width from the aspect ratio, {sizes}; padded right with " \
               f"{fill}; bilinear)"
    if mode == "limit":
        kind = pre.get("limit", "min")
        side = "long side down to" if kind == "max" else "short side up to"
        return f"limit:{kind} ({side} the size, each side to the nearest stride multiple, {sizes}; bilinear)"
    if mode == "letterbox" and sizes:
        anchor = ":topleft" if pre.get("anchor") == "topleft" else ""
        return f"letterbox:{pre.get('pad', DEFAULT_PAD)}{anchor} (long side to the size, the short side padded " \
               f"only to a stride multiple, {sizes}; bilinear)"
    if mode == "crop":
        pct = pre.get("crop_pct", DEFAULT_CROP_PCT)
        return f"crop:{pct:g} (shorter side to the input size / {pct:g}, centre cut; bilinear)"
    if mode == "letterbox":
        pad = pre.get("pad", DEFAULT_PAD)
        if pre.get("anchor") == "topleft":
            return f"letterbox:{pad}:topleft (fit whole in the top-left corner, border value {pad} right and " \
                   f"bottom; bilinear)"
        return f"letterbox:{pad} (fit whole, centred, border value {pad}; bilinear)"
    return "stretch (to the input size; bilinear)"


def check_pixel_units(mean, std) -> None:
    """Refuse mean/std that look like 0..1 units (torchvision's 0.485,0.456,0.406 / 0.229,0.224,0.225): the runtime
    subtracts them from 0..255 pixel values, so such a model would run on inputs 255 times too large, silently. A
    std of at most 1 that is not the default 1, or a mean within 0..1 that is not the default 0, is such a value:
    in pixel units they scale the input up or shift it by less than one level, which no trained model asks for."""
    std_units = all(s <= 1 for s in std) and any(s != 1 for s in std)
    mean_units = all(0 <= m <= 1 for m in mean) and any(m != 0 for m in mean)
    if not (std_units or mean_units):
        return
    text = lambda values: ",".join(f"{float(v):g}" for v in values)  # noqa: E731
    fixed_mean = [m * 255 for m in mean] if mean_units else mean
    fixed_std = [s * 255 for s in std] if std_units else std
    raise ModelError(f"mean {text(mean)} / std {text(std)} look like 0..1 units, but they apply to pixel values "
                     f"0..255: use --mean {text(fixed_mean)} --std {text(fixed_std)} (Python: Preprocess(mean=..., "
                     f"std=...) with the same numbers)")


# Preprocess's values when neither a flag nor the model says otherwise.
DEFAULTS = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "color": "RGB", "resize": "stretch"}
# What a person gives or a model says as one decision: mean and std together (one scaling), so that --mean alone
# never combines with a std the model file asked for.
_GROUPS = {"scaling": ("mean", "std"), "color": ("color",), "resize": ("resize",)}


@dataclass
class Preprocess:
    """How an image becomes the model's input: resize ('stretch', 'crop[:PCT]', 'letterbox[:PAD][:topleft]'; for an
    input whose H and/or W is dynamic 'letterbox', 'height[:PAD]' or 'limit[:min|max]'), then (pixel - mean) / std
    per channel with pixels 0..255, channels in `color` order. mean and std are listed R,G,B. A dynamic input's
    rule also takes size (letterbox: the long side; limit: the limit side), stride (each dynamic side a multiple of
    it) and, for height, min_width / max_width; export fills those left None from the model (ultralytics' imgsz and
    stride, the input's dynamic multiple/min/max) or the defaults (exporter/preprocessing.py). A field left None is
    not given: export takes it from the model's own metadata where it says (ultralytics), else the default (mean 0,
    std 1, RGB, stretch)."""

    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    color: str | None = None
    resize: str | None = None
    size: int | None = None
    stride: int | None = None
    min_width: int | None = None
    max_width: int | None = None

    def __post_init__(self):
        mean, std, color = self.value("mean"), self.value("std"), self.value("color")
        if len(mean) != 3 or len(std) != 3:
            raise ModelError(f"mean and std take 3 values (R,G,B), got {list(mean)} and {list(std)}")
        if any(s == 0 for s in std):
            raise ModelError(f"std {list(std)} has a zero")
        if color not in ("RGB", "BGR"):
            raise ModelError(f"color order '{color}' is not RGB or BGR")
        check_pixel_units(mean, std)
        parse_resize(self.value("resize"))
        for name in SIZE_FIELDS:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 2**31 - 1):
                raise ModelError(f"{name} must be a whole number of pixels from 1, got {v!r}")

    def value(self, name: str):
        v = getattr(self, name)
        return DEFAULTS.get(name) if v is None else v

    def given(self) -> tuple[str, ...]:
        """The groups (scaling, color, resize) set here rather than left to the model or the defaults."""
        return tuple(g for g, names in _GROUPS.items() if any(getattr(self, n) is not None for n in names))

    def over(self, found: "Preprocess") -> "Preprocess":
        """This one's groups where given, `found`'s (what a model file says) for the rest."""
        mine = self.given()
        fields = {n: getattr(self if g in mine else found, n) for g, names in _GROUPS.items() for n in names}
        # The sizes are given or filled in for the input (exporter/preprocessing.py): a model file never says them.
        return Preprocess(**fields, **{n: getattr(self, n) for n in SIZE_FIELDS})

    def to_json(self) -> dict:
        """The metadata's "preprocess" object (runtime/FORMAT.md)."""
        sizes = {name: getattr(self, name) for name in SIZE_FIELDS if getattr(self, name) is not None}
        return {"mean": list(map(float, self.value("mean"))), "std": list(map(float, self.value("std"))),
                "color": self.value("color"), **parse_resize(self.value("resize")), **sizes}
