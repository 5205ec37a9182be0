"""onnxruntime's own static int8 on the same photos and folds as benchmarks/int8_accuracy.py: the reference for
what post-training int8 reaches on a model outside ncnn.

quantize_static after quant_pre_process (shape inference, Conv+BatchNorm fusion), QDQ format, per-channel int8
weights, uint8 activations (onnxruntime's recommended U8S8 on x86), MinMax or Entropy calibration on the other
folds' photos (preprocessed by our runtime, as for our int8), judged against onnxruntime fp32 on the held-out
fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def folds_agreement(onnx_path: str, inputs: list[np.ndarray], folds: int, calibrate: str, work: str) -> dict:
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = str(Path(work) / "ort_pre.onnx")
    quant_pre_process(onnx_path, pre)
    fp32 = ort.InferenceSession(pre, providers=["CPUExecutionProvider"])
    name = fp32.get_inputs()[0].name
    refs = [fp32.run(None, {name: x})[0].reshape(-1) for x in inputs]

    class Reader(CalibrationDataReader):
        def __init__(self, xs):
            self.it = iter([{name: x} for x in xs])

        def get_next(self):
            return next(self.it, None)

    got = [None] * len(inputs)
    for fold in range(folds):
        held = set(range(fold, len(inputs), folds))
        out = str(Path(work) / f"ort_int8_{fold}.onnx")
        quantize_static(pre, out, Reader([x for i, x in enumerate(inputs) if i not in held]),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=getattr(CalibrationMethod, calibrate))
        session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        for i in held:
            got[i] = session.run(None, {name: inputs[i]})[0].reshape(-1)
    cos = [float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(refs, got)]
    top1 = float(np.mean([np.argmax(a) == np.argmax(b) for a, b in zip(refs, got)]))
    top5 = float(np.mean([set(np.argsort(-a)[:5]) == set(np.argsort(-b)[:5]) for a, b in zip(refs, got)]))
    return {"calibration": calibrate, "top1_agreement": top1, "top5_agreement": top5, "min_cosine": min(cos),
            "text": f"top-1 {100 * top1:.1f}%, top-5 set {100 * top5:.1f}%, min cosine {min(cos):.4f}"}
