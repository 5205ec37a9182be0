// Raw detector outputs -> candidate boxes in model input pixels, one function per output layout
// (Postprocess::layout); meta/tables.h kLayouts names each layout's function, and Decode dispatches through it.
// Written from each family's description of its head: ultralytics' Detect/Segment/Pose outputs (boxes already
// decoded by the graph), YOLOv5's, YOLOX's grid decode (paper, sec. 2.1; README export without
// decode_in_inference) and PicoDet's GFL distance distributions.
#include <algorithm>
#include <cmath>
#include <string>

#include "detect/detect_internal.h"
#include "meta/tables.h"

namespace tvm_ncnn {
namespace detect {
namespace {

const Tensor& Output(const std::vector<Tensor>& outputs, size_t i, const std::string& layout) {
  if (i >= outputs.size()) {
    throw Error("detect: layout " + layout + " needs output " + std::to_string(i) + ", the model gave " +
                std::to_string(outputs.size()));
  }
  if (outputs[i].dtype != "float32") {
    throw Error("detect: output " + std::to_string(i) + " is " + outputs[i].dtype + ", not float32");
  }
  return outputs[i];
}

[[noreturn]] void BadShape(const Tensor& t, const std::string& layout, const std::string& want) {
  throw Error("detect: output " + ShapeString(t.shape) + " does not fit layout " + layout + " (" + want + ")");
}

// The input's H and W (NCHW), which the strides' grids cover.
void InputSize(const ModelInfo& info, int64_t* h, int64_t* w) {
  if (info.inputs.empty() || info.inputs[0].shape.size() != 4) throw Error("detect: the model input is not NCHW");
  *h = info.inputs[0].shape[2];
  *w = info.inputs[0].shape[3];
}

// [1, N, 5 + nc] rows: YOLOv5 (decoded) and YOLOX (`yolox`: grid offsets, log sizes: decoded here).
std::vector<Candidate> Rows(const std::vector<Tensor>& outputs, const ModelInfo& info, const Postprocess& p,
                            float score, bool yolox) {
  const Tensor& y = Output(outputs, 0, p.layout);
  if (y.shape.size() != 3 || y.shape[0] != 1 || y.shape[2] != 5 + p.classes) {
    BadShape(y, p.layout, "[1, anchors, 5 + " + std::to_string(p.classes) + " classes]");
  }
  const int64_t n = y.shape[1], cols = y.shape[2];
  // YOLOX: anchors run stride by stride, row-major over each stride's grid.
  std::vector<int> anchor_stride;
  std::vector<int64_t> anchor_gx, anchor_gy;
  if (yolox) {
    int64_t h = 0, w = 0;
    InputSize(info, &h, &w);
    for (int s : p.strides) {
      const int64_t gh = h / s, gw = w / s;
      for (int64_t gy = 0; gy < gh; ++gy) {
        for (int64_t gx = 0; gx < gw; ++gx) {
          anchor_stride.push_back(s);
          anchor_gx.push_back(gx);
          anchor_gy.push_back(gy);
        }
      }
    }
    if (static_cast<int64_t>(anchor_stride.size()) != n) {
      throw Error("detect: yolox strides give " + std::to_string(anchor_stride.size()) + " anchors for input " +
                  std::to_string(h) + "x" + std::to_string(w) + ", output has " + std::to_string(n));
    }
  }
  std::vector<Candidate> out;
  const float* d = y.f32();
  for (int64_t a = 0; a < n; ++a) {
    const float* r = d + a * cols;
    const float obj = r[4];
    if (!yolox && !(obj > score)) continue;  // YOLOv5 filters on objectness first
    int best = 0;
    float s = r[5];
    for (int c = 1; c < p.classes; ++c) {
      if (r[5 + c] > s) s = r[5 + c], best = c;
    }
    s *= obj;
    if (yolox ? !(s >= score) : !(s > score)) continue;
    float cx = r[0], cy = r[1], w = r[2], h = r[3];
    if (yolox) {
      const float st = static_cast<float>(anchor_stride[a]);
      cx = (cx + anchor_gx[a]) * st;
      cy = (cy + anchor_gy[a]) * st;
      w = std::exp(w) * st;
      h = std::exp(h) * st;
    }
    out.push_back({cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, s, best, a});
  }
  return out;
}

}  // namespace

// ultralytics: [1, 4 + nc + extra, N], one column per anchor; the best class of each column. The classes are
// rows, so the best class is a running max over whole rows with the anchors in the inner loop (contiguous,
// vectorized); boxes are read only for the anchors whose best class passes. Ties keep the lower class, as a
// column-wise argmax does.
std::vector<Candidate> DecodeYoloV8(const std::vector<Tensor>& outputs, const ModelInfo& info, const Postprocess& p,
                                    float score) {
  const Tensor& y = Output(outputs, 0, p.layout);
  if (y.shape.size() != 3 || y.shape[0] != 1 || y.shape[1] < 4 + p.classes || p.classes < 1) {
    BadShape(y, p.layout, "[1, 4 + " + std::to_string(p.classes) + " classes + extra, anchors]");
  }
  const int64_t n = y.shape[2];
  const float* d = y.f32();
  std::vector<float> best(d + 4 * n, d + 5 * n);
  std::vector<int> best_class(static_cast<size_t>(n), 0);
  float* b = best.data();
  int* bc = best_class.data();
  for (int c = 1; c < p.classes; ++c) {
    const float* row = d + (4 + c) * n;
    for (int64_t a = 0; a < n; ++a) {
      const bool higher = row[a] > b[a];
      b[a] = higher ? row[a] : b[a];
      bc[a] = higher ? c : bc[a];
    }
  }
  std::vector<Candidate> out;
  for (int64_t a = 0; a < n; ++a) {
    const float s = b[a];
    if (!(s > score)) continue;
    const float cx = d[a], cy = d[n + a], hw = d[2 * n + a] / 2, hh = d[3 * n + a] / 2;
    out.push_back({cx - hw, cy - hh, cx + hw, cy + hh, s, bc[a], a});
  }
  return out;
}

// NMS-free heads exported end to end (YOLOv10, YOLO26; ultralytics' metadata "end2end"): the graph already took
// its top max_det rows [1, N, 6]: x1, y1, x2, y2 in input pixels, score, class index (a float). ultralytics keeps
// the rows scoring above the threshold, in the graph's order (best first), with no NMS (nms.py end2end branch).
std::vector<Candidate> DecodeEnd2End(const std::vector<Tensor>& outputs, const ModelInfo&, const Postprocess& p,
                                     float score) {
  const Tensor& y = Output(outputs, 0, p.layout);
  if (y.shape.size() != 3 || y.shape[0] != 1 || y.shape[2] != 6) BadShape(y, p.layout, "[1, detections, 6]");
  std::vector<Candidate> out;
  const float* d = y.f32();
  for (int64_t a = 0; a < y.shape[1]; ++a) {
    const float* r = d + a * 6;
    if (!(r[4] > score)) continue;
    const int cls = r[5] >= 0 && r[5] < 1 << 20 ? static_cast<int>(r[5]) : -1;
    out.push_back({r[0], r[1], r[2], r[3], r[4], cls, a});
  }
  return out;
}

std::vector<Candidate> DecodeYoloV5(const std::vector<Tensor>& outputs, const ModelInfo& info, const Postprocess& p,
                                    float score) {
  return Rows(outputs, info, p, score, false);
}

std::vector<Candidate> DecodeYoloX(const std::vector<Tensor>& outputs, const ModelInfo& info, const Postprocess& p,
                                   float score) {
  return Rows(outputs, info, p, score, true);
}

// PicoDet: per stride a score output [1, cells, nc] and a box output [1, cells, 4 (R + 1)]; each side's
// distance is the expectation of a softmax over R + 1 bins, times the stride, from the cell centre.
std::vector<Candidate> DecodePicoDet(const std::vector<Tensor>& outputs, const ModelInfo& info, const Postprocess& p,
                                     float score) {
  std::vector<const Tensor*> scores, dists;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& t = Output(outputs, i, p.layout);
    if (t.shape.size() != 3 || t.shape[0] != 1) BadShape(t, p.layout, "[1, cells, classes or 4 x bins]");
    (t.shape[2] == p.classes ? scores : dists).push_back(&t);
  }
  if (scores.size() != p.strides.size() || dists.size() != p.strides.size()) {
    throw Error("detect: picodet needs a score and a box output per stride (" + std::to_string(p.strides.size()) +
                "), the model has " + std::to_string(scores.size()) + " and " + std::to_string(dists.size()));
  }
  int64_t h = 0, w = 0;
  InputSize(info, &h, &w);
  const int kTopPerLevel = 1000;  // PicoDet keeps the best 1000 cells of each stride
  std::vector<Candidate> out;
  int64_t base = 0;
  for (size_t level = 0; level < p.strides.size(); ++level) {
    const int s = p.strides[level];
    const int64_t gw = (w + s - 1) / s, gh = (h + s - 1) / s, cells = scores[level]->shape[1];
    const int64_t bins4 = dists[level]->shape[2];
    if (cells != gw * gh || dists[level]->shape[1] != cells || bins4 % 4 != 0) {
      BadShape(*dists[level], p.layout, "stride " + std::to_string(s) + ": " + std::to_string(gw * gh) + " cells");
    }
    const int64_t bins = bins4 / 4;
    const float* sc = scores[level]->f32();
    const float* di = dists[level]->f32();
    std::vector<int64_t> order(static_cast<size_t>(cells));
    std::vector<float> best(static_cast<size_t>(cells));
    for (int64_t c = 0; c < cells; ++c) {
      order[c] = c;
      best[c] = *std::max_element(sc + c * p.classes, sc + (c + 1) * p.classes);
    }
    if (cells > kTopPerLevel) {
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return best[a] > best[b]; });
      order.resize(kTopPerLevel);
    }
    for (int64_t c : order) {
      if (!(best[c] > score)) continue;
      float side[4];
      for (int k = 0; k < 4; ++k) {
        const float* logit = di + c * bins4 + k * bins;
        const float m = *std::max_element(logit, logit + bins);
        float sum = 0, mean = 0;
        for (int64_t b = 0; b < bins; ++b) {
          const float e = std::exp(logit[b] - m);
          sum += e;
          mean += e * static_cast<float>(b);
        }
        side[k] = mean / sum * static_cast<float>(s);
      }
      const float cx = (static_cast<float>(c % gw) + 0.5f) * s, cy = (static_cast<float>(c / gw) + 0.5f) * s;
      for (int k = 0; k < p.classes; ++k) {  // every class above the threshold: PicoDet is multi-label
        const float v = sc[c * p.classes + k];
        if (v > score) out.push_back({cx - side[0], cy - side[1], cx + side[2], cy + side[3], v, k, base + c});
      }
    }
    base += cells;
  }
  return out;
}

std::vector<Candidate> Decode(const std::vector<Tensor>& outputs, const ModelInfo& info, const Postprocess& p,
                              float score, NmsRule* rule) {
  const LayoutRow* layout = FindName(kLayouts, p.layout);
  if (layout == nullptr) throw Error("detect: model.so records no detection layout (task '" + p.task + "')");
  *rule = layout->nms;
  return layout->decode(outputs, info, p, score);
}

}  // namespace detect
}  // namespace tvm_ncnn
