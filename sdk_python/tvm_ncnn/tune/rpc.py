"""A board through TVM's RPC tracker: tuning measurements (search.py) and timing whole model.so files
(cli/bench.py).

The board runs `tvm_ncnn_rpc_server --tracker HOST:PORT --key rpi4` from the aarch64 bundle
(deploy_app/rpc_server.cc): TVM's RPC protocol from the bundled libtvm_runtime, with libtvm_ncnn_runtime
loaded. This side asks the tracker for a session under the key, uploads files into the session's directory and
calls functions there: MetaSchedule's RPCRunner loads and times candidate .so files (cross-compiled here:
builder.py), and cli/bench.py calls tvm_ncnn.rpc.bench, which times a model.so as deploy_app --json does.
"""

from __future__ import annotations

from ..compile.targets import DeviceTarget
from ..errors import ModelError
from .builder import CrossExport, InProcessBuilder


def parse_tracker(text: str) -> tuple[str, int]:
    host, sep, port = (text or "").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ModelError(f"--rpc-tracker '{text}' is not HOST:PORT (e.g. 192.168.1.10:9190)")
    return host, int(port)


def check_tracker(host: str, port: int, key: str) -> None:
    """ModelError unless the tracker answers and some server has joined it under `key`."""
    from tvm import rpc

    try:
        summary = rpc.connect_tracker(host, port).summary()
    except Exception as err:  # noqa: BLE001 -- refused, unreachable, not a tracker
        raise ModelError(f"cannot reach the RPC tracker at {host}:{port}: {str(err).splitlines()[-1]}") from None
    keys = {server["key"].split(":", 1)[-1] for server in summary.get("server_info", [])}
    if key not in keys and key not in summary.get("queue_info", {}):
        raise ModelError(f"no RPC server has joined the tracker at {host}:{port} with key '{key}' (on the board: "
                         f"./tvm_ncnn_rpc_server --tracker {host}:{port} --key {key})")


def session(host: str, port: int, key: str, timeout: int = 120):
    from tvm import rpc

    try:
        return rpc.connect_tracker(host, port).request(key, priority=1, session_timeout=timeout)
    except Exception as err:  # noqa: BLE001
        raise ModelError(f"no RPC session for key '{key}' from {host}:{port}: {str(err).splitlines()[-1]}") from None


def runner(host: str, port: int, key: str, timeout: int):
    """MetaSchedule's RPC runner on the tracker's `key` servers: each candidate is timed 3 times after a warm-up
    (qemu or a busy board: no minimum repeat time, which would multiply the runs)."""
    from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, RPCConfig, RPCRunner

    config = RPCConfig(tracker_host=host, tracker_port=port, tracker_key=key, session_priority=1,
                       session_timeout_sec=timeout)
    return RPCRunner(rpc_config=config, evaluator_config=EvaluatorConfig(number=3, repeat=1, min_repeat_ms=0),
                     max_workers=1)


def builder(device: DeviceTarget):
    """Candidates built here, exported as .so files the board's server loads without a compiler of its own."""
    return InProcessBuilder(export=CrossExport(device.name))
