"""Precision: what export records in model.so and what load may ask for instead. The table below is the Python
side's one list of precisions; runtime/src/meta/ holds the C++ one, and a test holds them equal.

fp16 is the default because it is native ncnn's: on a CPU with fp16 arithmetic (Cortex-A76, Pi 5) ncnn runs its
fp16 storage and arithmetic kernels, elsewhere (Pi 4, x86) the runtime runs fp32, so the default costs nothing
where fp16 is not there and gives a Pi 5 ncnn's own speed without flags. int8 needs calibration data at export."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError


@dataclass(frozen=True)
class Precision:
    name: str
    loadable: bool  # load(precision=) and deploy_app --precision may switch a model to it
    description: str  # inspect's line


TABLE = (
    Precision("fp32", True, "fp32"),
    Precision("fp16", True, "fp16 (ncnn's fp16 kernels where the CPU has fp16 arithmetic, fp32 elsewhere)"),
    # Only as exported: its layers carry int8 weights and scales; the layers that are not int8 run at either.
    Precision("int8", False, "int8 (calibrated layers; the rest fp16 where the CPU has fp16 arithmetic)"),
)
PRECISIONS = tuple(p.name for p in TABLE)
LOAD_PRECISIONS = tuple(p.name for p in TABLE if p.loadable)
DEFAULT = "fp16"


def describe(name: str) -> str:
    return next((p.description for p in TABLE if p.name == name), name)


def check_export(precision: str | None) -> str:
    """The precision export records, or ModelError naming the choices."""
    value = DEFAULT if precision is None else str(precision)
    if value not in PRECISIONS:
        raise ModelError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    return value


def load_request(precision: str | None, fp16: bool | None) -> str:
    """The precision load() asks the runtime for: "" runs the model as exported. fp16=True/False is the older
    spelling of precision="fp16"/"fp32"; giving both is refused when they disagree."""
    if precision is not None and str(precision) not in PRECISIONS:
        # int8 passes here: the runtime refuses it, in one line, for a model not exported int8
        raise ModelError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)} "
                         f"(or None: as exported; int8 only for a model exported int8)")
    if fp16 is None:
        return "" if precision is None else str(precision)
    alias = "fp16" if fp16 else "fp32"
    if precision is not None and str(precision) != alias:
        raise ModelError(f"precision='{precision}' and fp16={fp16} disagree: give precision only")
    return alias
