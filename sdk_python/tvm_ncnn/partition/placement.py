"""Where each op of a model runs and why (the partition report): what export prints and stores in model.so's
metadata and `tvm-ncnn inspect` shows. Plain data, no TVM: inspect reads it back from a model.so without importing
the compiler (partition/regions.py computes it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# What makes export warn that TVM keeps real work: this share of the FLOPs, or any op on a tensor this large
WARN_FLOPS_SHARE = 0.01
WARN_ELEMENTS = 4096


@dataclass
class OpPlacement:
    op: str
    shape: list[int] | None
    place: str          # "ncnn:<region>" or "tvm"
    reason: str         # why not ncnn; empty when it runs in ncnn
    flops: int


@dataclass
class PartitionReport:
    ops: list[OpPlacement] = field(default_factory=list)
    regions: int = 0
    batch_loop: int = 0  # main runs these ops once per image of a batch this large (batch.py); 0: at once

    @property
    def ncnn_flops_share(self) -> float:
        total = sum(o.flops for o in self.ops)
        return sum(o.flops for o in self.ops if o.place != "tvm") / total if total else 0.0

    @property
    def ncnn_ops(self) -> int:
        return sum(o.place != "tvm" for o in self.ops)

    def tvm_warning(self) -> str | None:
        """One line when the part left to TVM may cost real time, naming its ops; else None. FLOPs alone hide
        it: elementwise ops count one FLOP an element, yet each one in TVM is a serial loop over a whole tensor
        and splits the ncnn region around it (a ConvNeXt with 99.8% of its FLOPs in ncnn ran 2.4x slower)."""
        left = [o for o in self.ops if o.place == "tvm" and o.op.startswith("relax.")]
        heavy = [o for o in left if o.shape and int(np.prod(o.shape)) >= WARN_ELEMENTS]
        share = 1.0 - self.ncnn_flops_share
        if share < WARN_FLOPS_SHARE and not heavy:
            return None
        kinds: dict[str, int] = {}
        for o in heavy or left:
            kinds[o.op.removeprefix("relax.")] = kinds.get(o.op.removeprefix("relax."), 0) + 1
        named = ", ".join(f"{n}x {op}" for op, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:5])
        return (f"{len(left)} ops stay in TVM ({100 * share:.1f}% of FLOPs, {self.regions} ncnn regions): {named}; "
                "`tvm-ncnn inspect` says why")

    def to_json(self) -> dict:
        return {"regions": self.regions, "ncnn_flops_share": self.ncnn_flops_share, "batch_loop": self.batch_loop,
                "ops": [o.__dict__ for o in self.ops]}

    @staticmethod
    def from_json(data: dict) -> "PartitionReport":
        return PartitionReport([OpPlacement(**o) for o in data.get("ops", [])], int(data.get("regions", 0)),
                               int(data.get("batch_loop", 0)))

    def table(self) -> str:
        rows = [("#", "op", "output shape", "runs in", "why not ncnn")]
        for i, o in enumerate(self.ops):
            shape = "x".join(str(d) for d in o.shape) if o.shape else "-"
            rows.append((str(i), o.op.removeprefix("relax."), shape, o.place, o.reason))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4] for r in rows]
        lines.append(f"{self.ncnn_ops}/{len(self.ops)} ops in {self.regions} ncnn region(s); "
                     f"{100 * self.ncnn_flops_share:.1f}% of FLOPs in ncnn"
                     + (f"; run once per image of the batch of {self.batch_loop}" if self.batch_loop else ""))
        return "\n".join(line.rstrip() for line in lines)
