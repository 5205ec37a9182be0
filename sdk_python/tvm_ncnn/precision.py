"""Precision: what export records in model.so and what load may ask for instead.

fp16 is the default because it is native ncnn's: on a CPU with fp16 arithmetic (Cortex-A76, Pi 5) ncnn runs its
fp16 storage and arithmetic kernels, elsewhere (Pi 4, x86) the runtime runs fp32, so the default costs nothing
where fp16 is not there and gives a Pi 5 ncnn's own speed without flags. int8 needs calibration data at export."""

from __future__ import annotations

from .errors import ModelError

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT = "fp16"
# What load(precision=) and deploy_app --precision can switch to: the layers that are not int8 run at either.
LOAD_PRECISIONS = ("fp32", "fp16")


def check_export(precision: str | None) -> str:
    """The precision export records, or ModelError naming the choices."""
    value = DEFAULT if precision is None else str(precision)
    if value not in PRECISIONS:
        raise ModelError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if value == "int8":
        from . import quantize

        # int8 is written only with a calibrated plan (int8_export.py runs export under one): never recorded
        # over fp32 layers.
        if not isinstance(quantize.current(), quantize.Plan):
            raise ModelError("precision int8 needs calibration data: --calibration DIR (Python: calibration=DIR)")
    return value


def load_request(precision: str | None, fp16: bool | None) -> str:
    """The precision load() asks the runtime for: "" runs the model as exported. fp16=True/False is the older
    spelling of precision="fp16"/"fp32"; giving both is refused when they disagree."""
    if precision is not None and str(precision) not in PRECISIONS:
        raise ModelError(f"precision '{precision}' is not one of {', '.join(LOAD_PRECISIONS)} "
                         f"(or None: as exported)")
    if fp16 is None:
        return "" if precision is None else str(precision)
    alias = "fp16" if fp16 else "fp32"
    if precision is not None and str(precision) != alias:
        raise ModelError(f"precision='{precision}' and fp16={fp16} disagree: give precision only")
    return alias
