"""`tvm-ncnn bench --rpc-tracker HOST:PORT --rpc-key KEY model.so`: time a model.so on a board, as deploy_app
--json times it there (the board's tvm_ncnn.rpc.bench, deploy_app/rpc_server.cc)."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from ..errors import ModelError
from ..format.describe import describe
from ..tune import rpc


def bench(model_so: str, tracker: str, key: str, input_path: str | None = None, threads: int = 0,
          repeat: int = 10, precision: str = "", timeout: int = 600) -> dict:
    """Time model.so on the board: {load_ms, first_ms, p50_ms, p90_ms, threads, precision, repeat, rss_mb},
    measured there as deploy_app --json measures. Without an input, zeros of the model's input shape."""
    host, port = rpc.parse_tracker(tracker)
    if not os.path.isfile(model_so):
        raise ModelError(f"{model_so}: no such file")
    info = describe(model_so)
    with tempfile.TemporaryDirectory() as tmp:
        if input_path is None:
            spec = info["inputs"][0]
            input_path = os.path.join(tmp, "input.npy")
            np.save(input_path, np.zeros(spec["shape"], dtype=spec.get("dtype", "float32")))
        elif not os.path.isfile(input_path):
            raise ModelError(f"{input_path}: no such file")
        remote = rpc.session(host, port, key, timeout)
        suffix = ".npy" if input_path.lower().endswith(".npy") else os.path.splitext(input_path)[1] or ".jpg"
        remote.upload(model_so, "model.so")
        remote.upload(input_path, "input" + suffix)
        try:
            text = remote.get_function("tvm_ncnn.rpc.bench")("model.so", "input" + suffix, threads, repeat,
                                                              precision)
        except Exception as err:  # noqa: BLE001 -- the board's error, e.g. a model for another TVM
            lines = [line for line in str(err).splitlines() if line.strip()]
            raise ModelError(f"{model_so} on '{key}': {lines[-1] if lines else err}") from None
    return json.loads(str(text))
