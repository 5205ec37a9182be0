"""`tvm-ncnn tune`: runs tune/search.py in this process when TVM can serialize its IR here, else in a child
Python that finds a working apache-tvm-ffi first on its path."""

from __future__ import annotations

import os
import subprocess
import sys

from ..errors import ModelError


# MetaSchedule serializes IR (tune/search.py): with the pinned apache-tvm-ffi that crashes, so `tvm-ncnn tune`
# runs in a child Python that finds apache-tvm-ffi 0.1.14.post1 first on its path.
TUNE_FFI_VERSION = "0.1.14.post1"
TUNE_FFI_ENV = "TVM_NCNN_TUNE_FFI"  # where that apache-tvm-ffi is installed (default: <venv>/tvm-ncnn-tune-ffi)


def run_tune_command(args) -> int:
    """`tvm-ncnn tune`: in this process when TVM can serialize its IR here, else in a child that can."""
    if os.environ.get("TVM_NCNN_TUNE_CHILD") or _serialization_works(os.environ.get("PYTHONPATH", "")):
        from ..tune import search  # MetaSchedule: imported only where it will run

        result = search.tune(args.model, args.output, target=args.target, trials=args.trials,
                             input_shapes=dict(args.input or []), offload=not args.no_offload,
                             rpc_tracker=args.rpc_tracker, rpc_key=args.rpc_key)
        print(f"wrote {result.path}: {result.trials} candidates measured over {len(result.tasks)} TVM function(s) "
              f"in {result.seconds:.0f} s; {result.tuned} tuned schedule(s) beat the default rules; apply them "
              f"with tvm-ncnn export --tuning {result.path} --target {result.target}")
        return 0
    overlay = os.environ.get(TUNE_FFI_ENV) or os.path.join(sys.prefix, "tvm-ncnn-tune-ffi")
    path = overlay + os.pathsep + os.environ.get("PYTHONPATH", "") if os.path.isdir(overlay) else None
    if path is None or not _serialization_works(path):
        raise ModelError(f"MetaSchedule crashes with the installed apache-tvm-ffi (ffi.ToJSONGraph); install "
                         f"{TUNE_FFI_VERSION} beside it for tuning: {sys.executable} -m pip install --no-deps "
                         f"--target {overlay} apache-tvm-ffi=={TUNE_FFI_VERSION}")
    env = dict(os.environ, PYTHONPATH=path, TVM_NCNN_TUNE_CHILD="1")
    return subprocess.call([sys.executable, "-m", "tvm_ncnn.cli", *sys.argv[1:]], env=env)


def _serialization_works(pythonpath: str) -> bool:
    probe = "import tvm; tvm.ir.save_json(tvm.ir.PrimType('int32'))"
    env = dict(os.environ, PYTHONPATH=pythonpath)
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True).returncode == 0


