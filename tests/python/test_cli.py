"""The tvm-ncnn command as a user runs it: export (ONNX and torch.export .pt2), inspect, run, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import zoo

from conftest import max_rel_error, onnxruntime_run, run_deploy_app, tvm_ncnn_cli
from nets import SplitByUnsupported, TinyConvNet


def test_export_inspect_run(tmp_path):
    onnx_path = zoo.to_onnx(SplitByUnsupported().eval(), str(tmp_path / "m.onnx"), (1, 3, 32, 32))
    done = tvm_ncnn_cli("export", onnx_path, "-o", tmp_path / "m.so")
    assert done.returncode == 0, done.stderr
    assert "2 ncnn region(s)" in done.stdout
    # the erf on a whole feature map splits the region: one warning line naming it
    warned = [line for line in done.stderr.splitlines() if line.startswith("tvm-ncnn: warning:")]
    assert len(warned) == 1 and "1x erf" in warned[0], done.stderr

    for target in (onnx_path, tmp_path / "m.so"):
        report = tvm_ncnn_cli("inspect", target)
        assert report.returncode == 0, report.stderr
        assert "erf" in report.stdout and "no ncnn layer for relax.erf" in report.stdout
        assert "% of FLOPs in ncnn" in report.stdout

    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = tvm_ncnn_cli("run", tmp_path / "m.so", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert run.returncode == 0, run.stderr
    assert max_rel_error(np.load(tmp_path / "y.npy"), onnxruntime_run(onnx_path, x)) <= 1e-4


def test_run_prints_the_top_k_deploy_app_prints(tmp_path, deploy_app):
    """One scoring, the runtime's (probability detection, softmax, top-k, labels): `tvm-ncnn run` and deploy_app
    show the same classes with the same scores."""
    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(tmp_path / "t.onnx"), (1, 3, 32, 32))
    (tmp_path / "labels.txt").write_text("".join(f"class-{i}\n" for i in range(10)))
    done = tvm_ncnn_cli("export", onnx_path, "-o", tmp_path / "t.so", "--labels", tmp_path / "labels.txt")
    assert done.returncode == 0, done.stderr
    np.save(tmp_path / "x.npy", np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32))

    def top_lines(text):
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("top-"))
        return [lines[start]] + [line for line in lines[start + 1:] if line.startswith("  ")]

    cli = tvm_ncnn_cli("run", tmp_path / "t.so", tmp_path / "x.npy", "--topk", "3")
    assert cli.returncode == 0, cli.stderr
    app = run_deploy_app(str(tmp_path / "t.so"), str(tmp_path / "x.npy"), "--topk", "3", "--repeat", "1")
    assert top_lines(cli.stdout) == top_lines(app.stdout)
    assert top_lines(cli.stdout)[0] == "top-3    probabilities" and "class-" in top_lines(cli.stdout)[1]


def test_export_torch_export_program(tmp_path):
    module = TinyConvNet().eval()
    x = torch.randn(1, 3, 32, 32)
    torch.export.save(torch.export.export(module, (x,)), str(tmp_path / "tiny.pt2"))
    done = tvm_ncnn_cli("export", tmp_path / "tiny.pt2", "-o", tmp_path / "tiny.so")
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        ref = module(x).numpy()
    assert max_rel_error(tvm_ncnn.load(tmp_path / "tiny.so").single(x.numpy()), ref) <= 1e-4


def test_reexport_to_the_same_path_loads_the_new_model(tmp_path):
    x = np.ones((1, 3, 16, 16), np.float32)
    outputs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        tvm_ncnn.export(zoo.to_onnx(SplitByUnsupported().eval(), str(tmp_path / f"m{seed}.onnx"), x.shape),
                        tmp_path / "same.so")
        outputs.append(tvm_ncnn.load(tmp_path / "same.so").single(x))
    assert not np.allclose(outputs[0], outputs[1])


def test_errors_are_one_line(tmp_path):
    (tmp_path / "model.txt").write_text("not a model")
    cases = [
        (("export", tmp_path / "missing.onnx"), "no such file"),
        (("export", tmp_path / "model.txt"), "unknown model format"),
        (("export", tmp_path, "-o", tmp_path / "x.so"), "is a directory"),
        (("inspect", tmp_path / "missing.so"), "no such file"),
    ]
    for args, message in cases:
        done = tvm_ncnn_cli(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, done.stderr)
    bad_shape = tvm_ncnn_cli("export", tmp_path / "m.onnx", "--input", "input:1,3.5")  # (a name: dynamic)
    assert bad_shape.returncode == 2 and "NAME:D1,D2" in bad_shape.stderr


def test_labels_that_do_not_fit_the_output_are_refused(tmp_path):
    """Issue 16.3: 3 labels for a 10-class output exported silently, then printed blank names."""
    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(tmp_path / "t.onnx"), (1, 3, 32, 32))
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    done = tvm_ncnn_cli("export", onnx_path, "-o", tmp_path / "t.so", "--labels", tmp_path / "three.txt")
    assert done.returncode == 1 and not (tmp_path / "t.so").exists(), done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "3 labels" in lines[0] and "10 classes" in lines[0], done.stderr
    with pytest.raises(tvm_ncnn.ModelError, match="11 labels, but output 'output' \\[1,10\\] has 10 classes"):
        tvm_ncnn.export(onnx_path, tmp_path / "t.so", labels=[f"c{i}" for i in range(11)])


def test_run_json_and_threads_message(tmp_path):
    """Issue 16.7: `tvm-ncnn run --json` is one JSON object with deploy_app's names; --threads 0 is refused in
    the CLI's words (not Python's None)."""
    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(tmp_path / "t.onnx"), (1, 3, 32, 32))
    (tmp_path / "labels.txt").write_text("".join(f"class-{i}\n" for i in range(10)))
    assert tvm_ncnn_cli("export", onnx_path, "-o", tmp_path / "t.so", "--labels", tmp_path / "labels.txt"
                        ).returncode == 0
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = tvm_ncnn_cli("run", tmp_path / "t.so", tmp_path / "x.npy", "--json", "--topk", "3", "--threads", "1")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["input"] == {"path": str(tmp_path / "x.npy"), "kind": "npy", "name": "input",
                            "shape": [1, 3, 32, 32], "dtype": "float32"}
    assert doc["outputs"] == [{"name": "output", "shape": [1, 10], "dtype": "float32"}]
    assert doc["threads"] == 1 and doc["run_ms"] > 0 and doc["scores"] == "probabilities"
    best = int(np.argmax(onnxruntime_run(onnx_path, x)))
    assert len(doc["topk"]) == 3 and doc["topk"][0]["index"] == best and doc["topk"][0]["label"] == f"class-{best}"

    for value in ("0", "257", "two"):
        bad = tvm_ncnn_cli("run", tmp_path / "t.so", tmp_path / "x.npy", "--threads", value)
        assert bad.returncode == 2 and "None" not in bad.stderr, bad.stderr
        assert f"'{value}' is not a whole number from 1 to 256" in bad.stderr and "leave --threads out" in bad.stderr
