"""model.so's weights are read in place (runtime/src/ncnn/mapped_weights.h) and their file pages handed back once
ncnn has transformed them, so a model costs about the memory native ncnn's copy of the weights costs. A ViT's
Linear layers are ncnn Gemm layers that pack their weight (B) in create_pipeline after reading their bias (C):
the bias's flag read released B's pages before the packing read them back, and nothing released them again, so
every Gemm weight stayed resident twice (vit_tiny: steady RSS 61.6 MB against native ncnn's 40.5; now 46.3)."""

from __future__ import annotations

import numpy as np
import torch

import tvm_ncnn
from tvm_ncnn import zoo

from transformer_nets import TinyViT


def resident_kb(path: str) -> tuple[int, int]:
    """(resident, size) in kB of this process's largest mapping of `path`: the weights' read-only data."""
    best, current, real = (0, 0), None, str(path)
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping's first line
                current = [0, 0] if len(head) > 5 and head[5] == real else None
            elif current is not None and head[0] in ("Size:", "Rss:"):
                current[0 if head[0] == "Rss:" else 1] = int(head[1])
                if head[0] == "Rss:" and current[1] > best[1]:
                    best = (current[0], current[1])
    return best


def test_packed_gemm_weights_do_not_stay_resident(tmp_path):
    torch.manual_seed(0)
    net = TinyViT(dim=256, heads=4).eval()  # two blocks: ~6 MB of Linear weights, every one a packed Gemm
    onnx_path = zoo.to_onnx(net, str(tmp_path / "vit.onnx"), (1, 3, 32, 32))
    so = tvm_ncnn.export(onnx_path, str(tmp_path / "vit.so"), precision="fp32").path
    model = tvm_ncnn.load(so, threads=1)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    expected = net(torch.from_numpy(x)).detach().numpy()
    for _ in range(3):
        np.testing.assert_allclose(model.single(x), expected, rtol=1e-4, atol=1e-4)
    resident, size = resident_kb(so)
    assert size > 5000, (resident, size)  # found the weights' mapping
    # Before: 98% resident (every packed Gemm weight faulted back in and kept). What stays now: what ncnn reads in
    # place at run time (LayerNorm's gamma and beta, the position embedding), the kernel's fault-around of cached
    # neighbouring pages on those reads (64 kB windows), and the mapping's other read-only data (the param text,
    # TVM's module), read at load: 20-25% here, varying from run to run with the page cache.
    assert resident < 0.4 * size, f"{resident} of {size} kB of model.so's weights resident after 3 runs"
