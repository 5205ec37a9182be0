"""Each ncnn region of a partitioned module compiled by TVM instead, as a function of its own: the reference export's
verification (exporter/verify.py) holds one region's ncnn output to, on the very inputs ncnn got, to name the
first region that computes wrong."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from ..ncnn.codegen import CODEGEN
from ..relax_util import plain_region


def regions_in_tvm(mod: tvm.IRModule) -> tvm.IRModule:
    """A module of every ncnn region of `mod`, each a public function named by its symbol, its composite calls
    inlined back into plain Relax."""
    bb = relax.BlockBuilder()
    regions = {}
    for _, func in mod.functions_items():
        if isinstance(func, relax.Function) and func.attrs and func.attrs.get("Codegen") == CODEGEN:
            regions[str(func.attrs["global_symbol"])] = func
    for symbol, func in regions.items():
        bb.add_func(plain_region(bb, func, symbol).with_attr("global_symbol", symbol), symbol)
    module = relax.transform.InlinePrivateFunctions()(bb.get())
    return relax.transform.DeadCodeElimination(entry_functions=list(regions))(module)


class RegionRunner:
    """The regions compiled by TVM for this machine (default pipeline: only run when a check failed)."""

    def __init__(self, mod: tvm.IRModule):
        executable = tvm.compile(regions_in_tvm(mod), target=tvm.target.Target({"kind": "llvm"}))
        self.vm = relax.VirtualMachine(executable, tvm.cpu())

    def __call__(self, symbol: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = self.vm[symbol](*(tvm.runtime.tensor(np.ascontiguousarray(x)) for x in inputs))
        return [o.numpy() for o in flat(out)]


def flat(value) -> list:
    """A VM result (a tensor or nested tuples of them) as a flat list, in order."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "Array":
        return [t for item in value for t in flat(item)]
    return [value]
