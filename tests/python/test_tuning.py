"""Tuning (tune/search.py, compile/tuning_db.py) and the RPC path (tune/rpc.py, deploy_app/rpc_server.cc), with few trials so that CI stays short.

The whole board path runs on this machine: TVM's RPC tracker on 127.0.0.1, the aarch64 bundle's
tvm_ncnn_rpc_server under qemu-aarch64 joining it as 'rpi4', `tvm-ncnn tune --target rpi4` measuring two
cross-compiled candidates there, `export --tuning`, and `tvm-ncnn bench` timing the model.so on the "board".
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tvm_ncnn.errors import ModelError
from tvm_ncnn.compile.targets import get_target
from tvm_ncnn.compile.tuning_db import TUNING_FILE, check_tuning_dir

ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(os.environ.get("TVM_NCNN_AARCH64_BUILD_DIR", ROOT / "build" / "aarch64")) / "tvm-ncnn-aarch64" / \
    "tvm_ncnn_rpc_server"
CLI = [sys.executable, "-m", "tvm_ncnn.cli"]


def _cli(*args, timeout=600):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def split_onnx(tmp_path_factory) -> Path:
    """Two conv regions in ncnn with an erf between them that stays in TVM: one function to tune."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    import nets

    path = tmp_path_factory.mktemp("tune") / "split.onnx"
    torch.onnx.export(nets.SplitByUnsupported().eval(), (torch.randn(1, 3, 16, 16),), str(path),
                      input_names=["input"], dynamo=False)
    return path


def test_tuning_dir_for_another_target_is_refused(tmp_path):
    (tmp_path / TUNING_FILE).write_text(json.dumps({"target": "rpi4", "tvm_version": "x", "records": []}))
    with pytest.raises(ModelError, match=r"tuned for target rpi4, not host \(tune with --target host"):
        check_tuning_dir(tmp_path, get_target("host"))
    with pytest.raises(ModelError, match="no such directory"):
        check_tuning_dir(tmp_path / "missing", get_target("host"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a tuning directory"):
        check_tuning_dir(tmp_path / "empty", get_target("host"))


def test_board_target_needs_a_tracker(split_onnx, tmp_path):
    proc = _cli("tune", split_onnx, "-o", tmp_path / "t", "--target", "rpi4", "--trials", "2")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "tvm-ncnn: error: target rpi4 is measured on the board: give --rpc-tracker HOST:PORT and --rpc-key KEY "
        "(README: Tuning)"]


def test_tune_host_then_export_applies_it(split_onnx, tmp_path, deploy_app):
    tuning = tmp_path / "tuning"
    proc = _cli("tune", split_onnx, "-o", tuning, "--trials", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tuning / TUNING_FILE).read_text())
    assert info["target"] == "host" and info["measured"] >= 1 and [t["name"] for t in info["tasks"]] == ["erf"]
    # the same model with and without the tuning gives the same numbers
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    outs = []
    for name, extra in [("plain.so", []), ("tuned.so", ["--tuning", tuning])]:
        proc = _cli("export", split_onnx, "-o", tmp_path / name, "--precision", "fp32", *extra)
        assert proc.returncode == 0, proc.stderr[-2000:]
        subprocess.run([str(deploy_app), str(tmp_path / name), str(tmp_path / "x.npy"), "--output",
                        str(tmp_path / (name + ".npy"))], check=True, capture_output=True, timeout=120)
        outs.append(np.load(tmp_path / (name + ".npy")))
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    # a host tuning dir is refused for rpi4, in one line
    proc = _cli("export", split_onnx, "-o", tmp_path / "pi.so", "--target", "rpi4", "--tuning", tuning)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "tuned for target host, not rpi4" in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def board():
    """A tracker on 127.0.0.1 and the bundle's RPC server under qemu-aarch64 (Cortex-A72) joined as 'rpi4'."""
    qemu = shutil.which("qemu-aarch64")
    if os.environ.get("TVM_NCNN_SKIP_AARCH64") == "1" or qemu is None or not SERVER.exists():
        pytest.skip("needs qemu-aarch64 and the aarch64 bundle (bash cmake/build_aarch64.sh)")
    port = _free_port()
    tracker = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port",
                                str(port), "--port-end", str(port + 1)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    server = None
    try:
        time.sleep(2)
        server = subprocess.Popen([qemu, "-L", "/usr/aarch64-linux-gnu", "-cpu", "cortex-a72", str(SERVER),
                                   "--tracker", f"127.0.0.1:{port}", "--key", "rpi4", "--host", "127.0.0.1",
                                   "--port", str(_free_port())], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        from tvm import rpc

        for _ in range(60):
            if server.poll() is not None:
                pytest.skip(f"the RPC server did not start under qemu: {server.stderr.read().decode()[-300:]}")
            try:
                if rpc.connect_tracker("127.0.0.1", port).summary()["queue_info"].get("rpi4"):
                    break
            except Exception:  # noqa: BLE001 -- the tracker is still starting
                pass
            time.sleep(1)
        else:
            pytest.skip("the RPC server under qemu did not join the tracker within 60 s")
        yield f"127.0.0.1:{port}"
    finally:
        for proc in (server, tracker):
            if proc is not None:
                proc.kill()
                proc.wait()


def test_rpc_tune_export_and_bench_on_qemu_board(split_onnx, tmp_path, board):
    tuning = tmp_path / "tuning"
    proc = _cli("tune", split_onnx, "-o", tuning, "--target", "rpi4", "--trials", "1", "--rpc-tracker", board,
                "--rpc-key", "rpi4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tuning / TUNING_FILE).read_text())
    assert info["target"] == "rpi4" and info["measured_on"].startswith("rpc rpi4")
    assert info["measured"] >= 1  # candidates cross-compiled here ran on the emulated board
    model = tmp_path / "model.so"
    proc = _cli("export", split_onnx, "-o", model, "--target", "rpi4", "--tuning", tuning)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _cli("bench", model, "--rpc-tracker", board, "--rpc-key", "rpi4", "--repeat", "3", "--threads", "1",
                "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["threads"] == 1 and result["repeat"] == 3
    assert 0 < result["p50_ms"] <= result["p90_ms"] and result["load_ms"] > 0
