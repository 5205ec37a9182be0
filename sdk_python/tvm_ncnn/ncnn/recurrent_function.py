"""The contract between frontend/recurrent.py, which imports each ONNX LSTM, GRU or RNN node as a call of a Relax
function of its own, and ncnn/ops/recurrent.py, which turns such a call into one ncnn layer: the function's name,
`onnx_<kind>_<direction>[_lbr]`, says what it computes (the builder may append a number to keep names unique)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tvm import relax

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DIRECTIONS = ("forward", "reverse", "bidirectional")
_NAME = re.compile(r"^onnx_(lstm|gru|rnn)_(forward|reverse|bidirectional)(_lbr)?\d*$")


@dataclass(frozen=True)
class Recurrent:
    """What a recurrent function computes, as its name spells it."""
    kind: str          # LSTM, GRU, RNN
    direction: str     # forward, reverse, bidirectional
    linear_before_reset: bool = False  # GRU only

    @property
    def name(self) -> str:
        return f"onnx_{self.kind.lower()}_{self.direction}" + ("_lbr" if self.linear_before_reset else "")

    @property
    def directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1


def recurrent_of(call) -> Recurrent | None:
    """The Recurrent a call of one of these functions computes, else None."""
    name = getattr(call.op, "name_hint", None) if isinstance(call, relax.Call) else None
    found = _NAME.match(str(name)) if name else None
    if found is None:
        return None
    return Recurrent(found.group(1).upper(), found.group(2), bool(found.group(3)))
