// Class-aware non-maximum suppression. Per class, as ultralytics (torchvision's nms on boxes offset per class),
// YOLOX (batched_nms) and PicoDet (hard_nms per class) do it; the offset trick of the first two is the same
// thing computed on shifted coordinates, which here would only lose float precision.
#include <algorithm>
#include <cstdint>
#include <numeric>

#include "detect/detect_internal.h"

namespace tvm_ncnn {
namespace detect {
namespace {

float Area(const Candidate& a) { return std::max(0.f, a.x2 - a.x1) * std::max(0.f, a.y2 - a.y1); }

float Iou(const Candidate& a, float area_a, const Candidate& b, float area_b, float eps) {
  const float w = std::max(0.f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const float h = std::max(0.f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const float inter = w * h;
  const float denom = area_a + area_b - inter + eps;
  return denom > 0 ? inter / denom : 0.f;
}

}  // namespace

// One pass over all candidates, best first, each checked only against the kept boxes of its own class: the same
// boxes as NMS class by class, since a class's candidates meet in the same order either way. Its payoffs: the
// pass stops at max_detections kept boxes (every later one is outranked by those), nothing is copied per class,
// and ties in score go by decode order, across classes too.
std::vector<Candidate> Nms(std::vector<Candidate> candidates, float iou, const NmsRule& rule, int max_detections) {
  // Indices, not the 32-byte candidates, are sorted; the index breaks ties (a stable sort's order).
  std::vector<int32_t> order(candidates.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const float sa = candidates[a].score, sb = candidates[b].score;
    return sa > sb || (!(sb > sa) && a < b);
  });
  if (rule.none) {  // the head suppressed duplicates itself (end2end): only the order and the cap
    std::vector<Candidate> kept;
    for (int32_t i : order) {
      if (max_detections > 0 && static_cast<int>(kept.size()) >= max_detections) break;
      kept.push_back(candidates[i]);
    }
    return kept;
  }
  if (rule.max_candidates > 0 && static_cast<int64_t>(order.size()) > rule.max_candidates) {
    order.resize(static_cast<size_t>(rule.max_candidates));
  }
  int classes = 0;
  for (const Candidate& c : candidates) classes = std::max(classes, c.cls + 1);
  // Per class: the kept boxes (indices) and how many candidates it has seen (PicoDet's per-class cap).
  std::vector<std::vector<int32_t>> kept_of(static_cast<size_t>(classes));
  std::vector<int> seen(static_cast<size_t>(classes), 0);
  std::vector<float> area(candidates.size());
  const int per_class_keep = rule.per_class_keep > 0 ? rule.per_class_keep : INT32_MAX;
  std::vector<Candidate> kept;
  for (int32_t i : order) {
    const Candidate& c = candidates[i];
    if (c.cls < 0) continue;
    if (rule.per_class_candidates > 0 && seen[c.cls]++ >= rule.per_class_candidates) continue;
    std::vector<int32_t>& mine = kept_of[c.cls];
    if (static_cast<int>(mine.size()) >= per_class_keep) continue;
    area[i] = Area(c);
    bool keep = true;
    for (int32_t k : mine) {
      if (Iou(c, area[i], candidates[k], area[k], rule.iou_eps) > iou) {
        keep = false;
        break;
      }
    }
    if (!keep) continue;
    mine.push_back(i);
    kept.push_back(c);
    if (max_detections > 0 && static_cast<int>(kept.size()) >= max_detections) break;
  }
  return kept;
}

}  // namespace detect
}  // namespace tvm_ncnn
