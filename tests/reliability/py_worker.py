"""Child process of support.python_cases: reads one case (JSON) a line on stdin, runs it through the Python API
and answers one JSON line on stdout, so that the parent knows which case a crash or hang hit. Kept running
across cases: importing TVM costs a second or two.

  {"op": "load", "path": P, "threads": N|null, "run": bool}      tvm_ncnn.load(P, threads) (and one call)
  {"op": "call", "path": P, "shape": [...], "dtype": D}          load, then call on zeros of that shape/dtype
  {"op": "image", "path": P, "image": I}                         load, then model.load_image(I)
  {"op": "export", "model": M, "output": O, "input_shapes": {}}  tvm_ncnn.export(M, O, input_shapes=...)
"""

from __future__ import annotations

import json
import sys

import numpy as np

import tvm_ncnn


def run_case(case: dict) -> dict:
    op = case["op"]
    if op == "export":
        result = tvm_ncnn.export(case["model"], case["output"], input_shapes=case.get("input_shapes"))
        placement = [{"op": o.op, "place": o.place, "reason": o.reason} for o in result.report.ops]
        return {"placement": placement}
    model = tvm_ncnn.load(case["path"], threads=case.get("threads"))
    if op == "load":
        if case.get("run"):
            spec = model.inputs[0]
            y = model(np.zeros(spec["shape"], spec["dtype"]))[0]
            return {"output_shape": list(np.shape(y))}
        return {}
    if op == "call":
        model(np.zeros(case["shape"], case["dtype"]))
        return {}
    if op == "image":
        return {"shape": list(model.load_image(case["image"]).shape)}
    raise ValueError(f"unknown op {op}")


def main() -> int:
    for line in sys.stdin:
        case = json.loads(line)
        try:
            out = {"ok": True, **run_case(case)}
        except Exception as err:  # the parent checks the type: only ModelError is a clean refusal
            out = {"ok": False, "type": type(err).__name__, "message": str(err)}
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
