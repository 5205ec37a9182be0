"""Shared by the detection tests: matching detections to a reference's, and ultralytics models from yaml whose
random weights give boxes of varied sizes and scores."""

from __future__ import annotations

import torch

from tvm_ncnn.zoo import modern as zoo_modern


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 1.0


def match(ours_boxes, ours_scores, ours_classes, ref_boxes, ref_scores, ref_classes):
    """Pairs (ours, ref) of the same detection; asserts every one has its twin (IoU >= 0.99, class, score 1e-4).
    Returns the pairs and the lowest IoU."""
    assert len(ours_scores) == len(ref_scores), f"{len(ours_scores)} detections, reference {len(ref_scores)}"
    free = set(range(len(ref_scores)))
    pairs, worst = [], 1.0
    for i in range(len(ours_scores)):
        best = max(free, key=lambda j: (ref_classes[j] == ours_classes[i]) * iou(ours_boxes[i], ref_boxes[j]) -
                   abs(ref_scores[j] - ours_scores[i]), default=None)
        assert best is not None
        overlap = iou(ours_boxes[i], ref_boxes[best])
        assert ref_classes[best] == ours_classes[i] and overlap >= 0.99, (i, ours_boxes[i], ref_boxes[best])
        assert abs(ref_scores[best] - ours_scores[i]) <= 1e-4
        free.remove(best)
        pairs.append((i, best))
        worst = min(worst, overlap)
    return pairs, worst


def yolo_with_scores(name: str, seed: int = 0):
    """An ultralytics model from yaml with varied scores (with_scores)."""
    model, shape = zoo_modern.torch_model(name, seed)
    return with_scores(model, seed), shape


def with_scores(model, seed: int = 0):
    """Every conv re-drawn at unit gain (He init; fused random BN otherwise fades the features to constants) and
    class biases around -1, so that boxes differ in size and score 0.05..0.95 rather than the random-init prior's
    1e-4 everywhere."""
    g = torch.Generator().manual_seed(seed + 1)
    head = model.model[-1]
    with torch.no_grad():
        dfl = set(head.dfl.modules())  # fixed weights: the bins' expectation
        for conv in model.modules():
            if isinstance(conv, torch.nn.Conv2d) and conv not in dfl:
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if conv.bias is not None:
                    conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1)
        for seq in [*head.cv3, *(getattr(head, "one2one_cv3", None) or [])]:
            seq[-1].bias.add_(-1.0)
    return model
