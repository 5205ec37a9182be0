"""How far a model.so's outputs are from a reference model.so's (int8 or fp16 against fp32) on the same inputs:
per output the lowest and mean cosine similarity and the largest absolute error (also relative to max|ref|),
and for a classifier (first output a vector of classes) top-1 and top-5 agreement."""

from __future__ import annotations

import numpy as np


def is_class_vector(shape) -> bool:
    """[1, N] or [1, N, 1, 1] with N >= 2: what deploy_app prints the top-k of."""
    dims = [int(d) for d in shape]
    return len(dims) >= 2 and dims[0] == 1 and dims[1] >= 2 and all(d == 1 for d in dims[2:])


def compare(reference, candidate, inputs: list[np.ndarray]) -> dict:
    """Both models run every input; the dict is what export prints and stores (JSON types only)."""
    refs = [reference(x) for x in inputs]
    gots = [candidate(x) for x in inputs]
    outputs = []
    for i, spec in enumerate(reference.outputs):
        pairs = [(r[i], g[i]) for r, g in zip(refs, gots)]
        sims = [cosine(r, g) for r, g in pairs]
        err = max(float(np.abs(r.astype(np.float64) - g).max(initial=0.0)) for r, g in pairs)
        scale = max(float(np.abs(r).max(initial=0.0)) for r, _ in pairs) or 1.0
        outputs.append({"name": spec["name"], "cosine_min": min(sims), "cosine_mean": float(np.mean(sims)),
                        "max_error": err, "max_error_rel": err / scale})
    result = {"inputs": len(inputs), "outputs": outputs}
    if reference.outputs and is_class_vector(reference.outputs[0]["shape"]):
        top1 = top5 = 0
        for r, g in zip(refs, gots):
            a, b = r[0].reshape(-1), g[0].reshape(-1)
            top1 += int(np.argmax(a) == np.argmax(b))
            top5 += int(set(np.argsort(-a, kind="stable")[:5]) == set(np.argsort(-b, kind="stable")[:5]))
        result["top1_agreement"] = top1 / len(inputs)
        result["top5_agreement"] = top5 / len(inputs)
    return result


def report_text(result: dict, against: str = "fp32") -> str:
    lines = [f"accuracy against {against} on {result['inputs']} held-out input(s)"
             + (" (not used for calibration)" if against == "fp32" else "") + ":"]
    if "top1_agreement" in result:
        lines.append(f"  top-1 agreement {100 * result['top1_agreement']:.1f}%, "
                     f"top-5 set agreement {100 * result['top5_agreement']:.1f}%")
    for o in result["outputs"]:
        lines.append(f"  output '{o['name']}': cosine min {o['cosine_min']:.5f} (mean {o['cosine_mean']:.5f}), "
                     f"max error {o['max_error']:.3g} ({o['max_error_rel']:.2g} x max|{against}|)")
    return "\n".join(lines)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))
