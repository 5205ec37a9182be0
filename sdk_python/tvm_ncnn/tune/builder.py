"""MetaSchedule's builder for `tvm-ncnn tune`: candidates built in this process, one after the other (TVM's
LocalBuilder hands IRModules to worker processes by pickling them, which goes through ffi.ToJSONGraph: it crashes
with the pinned apache-tvm-ffi, tune/search.py), and for a board exported as .so files by the cross compiler."""

from __future__ import annotations

import os
import tempfile

from ..compile.targets import get_target

try:
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder

    @derived_object
    class InProcessBuilder(PyBuilder):
        """Builds each candidate in this process, one after the other: TVM's LocalBuilder hands IRModules to
        worker processes by pickling them, which goes through ffi.ToJSONGraph (see the module docstring).
        export(runtime module) -> artifact path: TVM's default (a tar the local runner links) or, for a board,
        a .so from the cross compiler (CrossExport)."""

        def __init__(self, export=None) -> None:
            super().__init__()
            self.export = export

        def build(self, build_inputs):
            from tvm.s_tir.meta_schedule.builder import local_builder

            results = []
            for item in build_inputs:
                try:
                    built = local_builder.default_build(item.mod, item.target, None)
                    path = (self.export or local_builder.default_export)(built)
                    results.append(BuilderResult(path, None))
                except Exception as err:  # noqa: BLE001 -- a candidate that fails to build is recorded as such
                    results.append(BuilderResult(None, f"{type(err).__name__}: {err}"[:2000]))
            return results
except ImportError:  # pragma: no cover -- MetaSchedule absent from this TVM build
    InProcessBuilder = None


class CrossExport:
    """A candidate as a .so the board's RPC server loads without a compiler of its own."""

    def __init__(self, target: str):
        self.target = target

    def __call__(self, module) -> str:
        path = os.path.join(tempfile.mkdtemp(prefix="tvm_ncnn_tune_"), "candidate.so")
        fcompile = get_target(self.target).linker()
        if fcompile is None:
            module.export_library(path)
        else:
            module.export_library(path, fcompile=fcompile)
        return path
