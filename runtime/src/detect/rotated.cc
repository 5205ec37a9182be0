// Oriented boxes (task "obb", ultralytics YOLOv8/11-obb: output 0 [1, 4 + classes + 1, anchors], the last channel
// the angle in radians): their NMS, as ultralytics' rotated non_max_suppression decides it, and the mapping of a
// rotated box back to the image.
//
// Its NMS differs from the greedy one (nms.cc) in two ways, both kept so that the same boxes survive:
// - the overlap is ProbIoU (Llerena et al. 2021, arXiv 2106.06072): each box as a 2-D Gaussian with the box's
//   centre and covariance R diag(w^2/12, h^2/12) R^T; the Bhattacharyya distance B between two Gaussians gives the
//   Hellinger distance sqrt(1 - exp(-B)), and 1 - that is the overlap;
// - it is Fast NMS (Bolya et al. 2019, arXiv 1904.02689): a box is dropped when any better box of its class
//   overlaps it by more than the threshold, whether or not that better box was itself dropped.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "detect/detect_internal.h"

namespace tvm_ncnn {
namespace detect {
namespace {

constexpr double kEps = 1e-7;  // keeps the Gaussians' determinants and the distance away from 0

struct Gaussian {
  double x, y, a, b, c;  // centre; covariance [[a, c], [c, b]]
};

Gaussian GaussianOf(const RotatedBox& r) {
  const double va = static_cast<double>(r.w) * r.w / 12, vb = static_cast<double>(r.h) * r.h / 12;
  const double cos = std::cos(r.angle), sin = std::sin(r.angle);
  return {r.cx, r.cy, va * cos * cos + vb * sin * sin, va * sin * sin + vb * cos * cos, (va - vb) * cos * sin};
}

// ProbIoU(p, q) > iou. `b_max`: the distance B above which it cannot be (below); with `bounded`, B's first term
// alone above it answers no without the logarithm and the exponential.
bool Overlaps(const Gaussian& p, const Gaussian& q, double iou, double b_max, bool bounded) {
  const double a = p.a + q.a, b = p.b + q.b, c = p.c + q.c;
  const double dx = p.x - q.x, dy = p.y - q.y;
  const double det = a * b - c * c;
  // B = 1/8 d^T S^-1 d + 1/2 ln(det S / sqrt(det P det Q)), S = (P + Q) / 2; written with a, b, c of P + Q.
  const double mahalanobis = (a * dy * dy + b * dx * dx) / (det + kEps) * 0.25 - c * dx * dy / (det + kEps) * 0.5;
  if (bounded && mahalanobis > b_max) return false;
  const double spread = std::max(0.0, p.a * p.b - p.c * p.c) * std::max(0.0, q.a * q.b - q.c * q.c);
  const double log_term = 0.5 * std::log(det / (4 * std::sqrt(spread) + kEps) + kEps);
  const double bhattacharyya = std::clamp(mahalanobis + log_term, kEps, 100.0);
  return 1 - std::sqrt(1 - std::exp(-bhattacharyya) + kEps) > iou;
}

}  // namespace

RotatedBox RotatedOf(const Tensor& y0, int classes, int64_t anchor) {
  const int64_t n = y0.shape[2];
  const float* d = y0.f32() + anchor;
  return {d[0], d[n], d[2 * n], d[3 * n], d[(4 + static_cast<int64_t>(classes)) * n]};
}

std::vector<Candidate> RotatedNms(std::vector<Candidate> candidates, const Tensor& y0, int classes, float iou,
                                  const NmsRule& rule, int max_detections) {
  std::vector<int32_t> order(candidates.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return candidates[a].score > candidates[b].score; });
  if (rule.max_candidates > 0 && static_cast<int64_t>(order.size()) > rule.max_candidates) {
    order.resize(static_cast<size_t>(rule.max_candidates));
  }
  // Per class, every candidate seen so far (kept or not: Fast NMS), as Gaussians with their centres and traces
  // apart for the bound below; the kept ones and the dropped ones apart, the kept searched first: almost every
  // dropped box overlaps a kept one, so the long list of dropped ones is searched mostly for boxes that stay.
  struct Seen {
    std::vector<Gaussian> g;
    std::vector<float> x, y, trace;
    void Add(const Gaussian& gauss, float gx, float gy, float gt) {
      g.push_back(gauss);
      x.push_back(gx);
      y.push_back(gy);
      trace.push_back(gt);
    }
  };
  std::vector<Seen> kept_of(static_cast<size_t>(std::max(classes, 1))), dropped_of(kept_of.size());
  // A cheap exact bound first: B >= d^T (P + Q)^-1 d / 4 >= |d|^2 / (4 trace(P + Q)) (the log term is >= 0 by
  // Minkowski's determinant inequality), and ProbIoU > iou needs B < -ln(1 + eps - (1 - iou)^2). Pairs farther
  // apart than that skip the logarithm and the exponential; the margin keeps rounding on the exact side. The bound
  // runs over blocks of candidates without an early exit, which the compiler vectorizes: with thousands of boxes
  // of one class (every anchor above the threshold) the pairs are millions.
  // The inequality needs each determinant well above eps: a box under about 0.6 px square (det < 0.01 px^4) gets
  // an infinite reach, so that every pair with it takes the exact test.
  const double hd = 1.0 - iou, b_max = -std::log(std::max(1 + kEps - hd * hd, 1e-300)) * 1.001 + 1e-4;
  const float reach = static_cast<float>(4 * b_max);
  constexpr size_t kBlock = 64;
  auto overlaps_any = [&](const Seen& better, const Gaussian& g, float gx, float gy, float gt, bool tiny) {
    for (size_t start = 0; start < better.g.size(); start += kBlock) {
      const size_t n = std::min(kBlock, better.g.size() - start);
      const float *x = better.x.data() + start, *y = better.y.data() + start, *t = better.trace.data() + start;
      auto near = [&](size_t j) {  // float: a little more margin
        const float dx = x[j] - gx, dy = y[j] - gy;
        return dx * dx + dy * dy <= reach * (t[j] + gt) * 1.001f + 1e-3f;
      };
      int count = 0;  // a reduction with no stores, which the compiler vectorizes
      for (size_t j = 0; j < n; ++j) count += near(j);
      for (size_t j = 0; count > 0 && j < n; ++j) {
        if (near(j) && Overlaps(better.g[start + j], g, iou, b_max, !tiny && std::isfinite(t[j]))) return true;
      }
    }
    return false;
  };
  std::vector<Candidate> kept;
  for (int32_t i : order) {
    const Candidate& c = candidates[i];
    if (c.cls < 0 || c.cls >= static_cast<int>(kept_of.size())) continue;
    const Gaussian g = GaussianOf(RotatedOf(y0, classes, c.anchor));
    const bool tiny = g.a * g.b - g.c * g.c < 1e-2;
    const float gx = static_cast<float>(g.x), gy = static_cast<float>(g.y);
    const float gt = tiny ? std::numeric_limits<float>::infinity() : static_cast<float>(g.a + g.b);
    const bool drop = overlaps_any(kept_of[c.cls], g, gx, gy, gt, tiny) ||
                      overlaps_any(dropped_of[c.cls], g, gx, gy, gt, tiny);
    (drop ? dropped_of : kept_of)[c.cls].Add(g, gx, gy, gt);
    if (drop) continue;
    kept.push_back(c);
    if (max_detections > 0 && static_cast<int>(kept.size()) >= max_detections) break;
  }
  return kept;
}

}  // namespace detect
}  // namespace tvm_ncnn
