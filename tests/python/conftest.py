"""Shared fixtures: the host build, exported models cached per session, and the references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_APP = Path(os.environ.get("TVM_NCNN_DEPLOY_APP", ROOT / "build" / "host" / "deploy_app"))


def onnx_model(nodes, inputs: dict, outputs: list, inits, name: str = "model", opset: int = 17):
    """A float32 ONNX model of `nodes`: `inputs` maps each graph input to its shape (names for dynamic dims),
    `outputs` names the graph outputs (shapes left to inference). IR version 8, which the pinned onnxruntime
    reads (onnx writes its own newest)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, name,
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def max_rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref|: the suite's tolerance is 1e-4."""
    assert got.shape == ref.shape, f"shape {got.shape} != reference {ref.shape}"
    return float(np.abs(got.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-12))


def onnxruntime_run(onnx_path: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def tvm_reference(onnx_path: str, x: np.ndarray) -> np.ndarray:
    """The same model compiled by TVM alone, run in this process (no ncnn, no tvm-ncnn runtime)."""
    import tvm
    from tvm import relax

    from tvm_ncnn.frontend.importer import import_model

    executable = tvm.compile(import_model(onnx_path).mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def export_split(directory: Path) -> tuple[Path, Path, np.ndarray]:
    """nets.SplitByUnsupported (two ncnn regions with an erf left to TVM between them, which export warns of)
    exported to directory/split.so, and a random input beside it: (model.so, x.npy, x)."""
    import tvm_ncnn
    from tvm_ncnn import zoo
    from tvm_ncnn.compile.lower import TvmFallbackWarning

    from nets import SplitByUnsupported

    onnx_path = zoo.to_onnx(SplitByUnsupported().eval(), str(directory / "split.onnx"), (1, 3, 32, 32))
    with pytest.warns(TvmFallbackWarning):
        tvm_ncnn.export(onnx_path, str(directory / "split.so"))
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(directory / "x.npy", x)
    return directory / "split.so", directory / "x.npy", x


def tvm_ncnn_cli(*args) -> subprocess.CompletedProcess:
    """The tvm-ncnn command, as `python -m tvm_ncnn.cli` with this interpreter."""
    return subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def run_deploy_app(model_so: str, input_path: str, *extra: str, check: bool = True):
    proc = subprocess.run([str(DEPLOY_APP), model_so, input_path, *extra], capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, f"deploy_app failed ({proc.returncode}): {proc.stderr}"
    return proc


def deploy_app_output(model_so: str, x: np.ndarray, tmp: Path) -> tuple[np.ndarray, dict]:
    inp, out = tmp / "input.npy", tmp / "output.npy"
    np.save(inp, x)
    proc = run_deploy_app(model_so, str(inp), "--output", str(out), "--repeat", "2", "--json")
    return np.load(out), json.loads(proc.stdout)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def deploy_app() -> Path:
    assert DEPLOY_APP.exists(), f"{DEPLOY_APP} is not built: run cmake --build build/host"
    return DEPLOY_APP
