"""Issue 16.6: what tvm_ncnn.load(...)(x) returns and takes. One type whatever the number of outputs (a list, in
the order of model.outputs), model.single(x) for a one-output model, and a float64 array refused with the fix
rather than converted silently (as deploy_app refuses a float64 .npy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tvm_ncnn

from nets import TinyConvNet


class TwoHeads(nn.Module):
    """A feature map and its pooled vector: two outputs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return y, y.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    work = tmp_path_factory.mktemp("api")
    torch.manual_seed(0)
    found = {}
    for name, module, shape in (("one", TinyConvNet(), (1, 3, 32, 32)), ("two", TwoHeads(), (1, 3, 8, 8))):
        x = torch.randn(*shape)
        tvm_ncnn.export(module.eval(), work / f"{name}.so", example_inputs=(x,))
        with torch.no_grad():
            ref = module(x)
        found[name] = (tvm_ncnn.load(work / f"{name}.so"), x.numpy(), ref if isinstance(ref, tuple) else (ref,))
    return found


def test_call_returns_a_list_for_one_output_and_for_several(models):
    for name in ("one", "two"):
        model, x, refs = models[name]
        got = model(x)
        assert isinstance(got, list) and len(got) == len(refs) == len(model.outputs), name
        for out, ref, spec in zip(got, refs, model.outputs):
            assert list(out.shape) == spec["shape"]
            np.testing.assert_allclose(out, ref.numpy(), rtol=1e-4, atol=1e-5)


def test_single_is_the_one_output(models):
    model, x, refs = models["one"]
    np.testing.assert_array_equal(model.single(x), model(x)[0])
    two, x2, _ = models["two"]
    with pytest.raises(tvm_ncnn.ModelError, match=r"has 2 outputs \('output0', 'output1'\); call model\(x\)"):
        two.single(x2)


def test_float64_is_refused_with_the_fix(models):
    model, x, _ = models["one"]
    with pytest.raises(tvm_ncnn.ModelError) as err:
        model(x.astype(np.float64))
    message = str(err.value)
    assert "expects [1,3,32,32] float32, got [1,3,32,32] float64" in message
    assert "x.astype(np.float32)" in message
    with pytest.raises(tvm_ncnn.ModelError, match="astype"):
        model.profile(x.astype(np.float64), repeat=1)
    with pytest.raises(tvm_ncnn.ModelError, match="astype"):
        model(x.tolist())  # nested Python floats are float64 too
