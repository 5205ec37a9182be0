// Class-aware non-maximum suppression. Per class, as ultralytics (torchvision's nms on boxes offset per class),
// YOLOX (batched_nms) and PicoDet (hard_nms per class) do it; the offset trick of the first two is the same
// thing computed on shifted coordinates, which here would only lose float precision.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <unordered_map>

#include "detect/detect_internal.h"

namespace tvm_ncnn {
namespace detect {
namespace {

float Iou(const Candidate& a, const Candidate& b, float eps) {
  const float w = std::max(0.f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const float h = std::max(0.f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const float inter = w * h;
  const float area_a = std::max(0.f, a.x2 - a.x1) * std::max(0.f, a.y2 - a.y1);
  const float area_b = std::max(0.f, b.x2 - b.x1) * std::max(0.f, b.y2 - b.y1);
  const float denom = area_a + area_b - inter + eps;
  return denom > 0 ? inter / denom : 0.f;
}

// Best first; equal scores keep decode order, so the result never depends on the sort's whims.
void SortByScore(std::vector<Candidate>* c) {
  std::stable_sort(c->begin(), c->end(), [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
}

}  // namespace

std::vector<Candidate> Nms(std::vector<Candidate> candidates, float iou, const NmsRule& rule, int max_detections) {
  SortByScore(&candidates);
  if (rule.max_candidates > 0 && static_cast<int64_t>(candidates.size()) > rule.max_candidates) {
    candidates.resize(static_cast<size_t>(rule.max_candidates));
  }
  // Classes apart: a box never suppresses one of another class.
  std::unordered_map<int, std::vector<Candidate>> by_class;
  for (const Candidate& c : candidates) by_class[c.cls].push_back(c);
  // A class never needs more than max_detections boxes: any further one is outranked by that many of its own.
  int limit = rule.per_class_keep > 0 ? rule.per_class_keep : INT32_MAX;
  if (max_detections > 0) limit = std::min(limit, max_detections);
  std::vector<Candidate> kept;
  for (auto& entry : by_class) {
    std::vector<Candidate>& group = entry.second;  // still best first
    if (rule.per_class_candidates > 0 && static_cast<int>(group.size()) > rule.per_class_candidates) {
      group.resize(static_cast<size_t>(rule.per_class_candidates));
    }
    std::vector<Candidate> mine;
    for (const Candidate& c : group) {
      bool keep = true;
      for (const Candidate& k : mine) {
        if (Iou(c, k, rule.iou_eps) > iou) {
          keep = false;
          break;
        }
      }
      if (!keep) continue;
      mine.push_back(c);
      if (static_cast<int>(mine.size()) >= limit) break;
    }
    kept.insert(kept.end(), mine.begin(), mine.end());
  }
  SortByScore(&kept);
  if (max_detections > 0 && static_cast<int>(kept.size()) > max_detections) kept.resize(max_detections);
  return kept;
}

}  // namespace detect
}  // namespace tvm_ncnn
