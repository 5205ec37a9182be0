// Pieces of Detect (detect.cc) shared by its files; not public API.
#pragma once

#include <cstdint>
#include <vector>

#include "tvm_ncnn/detect.h"

namespace tvm_ncnn {
namespace detect {

// A box before NMS, in model input pixels; `anchor` finds its mask coefficients or keypoints again.
struct Candidate {
  float x1, y1, x2, y2;
  float score;
  int cls;
  int64_t anchor;
};

// How a family's own post-processing runs NMS, so that ours keeps the same boxes.
struct NmsRule {
  int64_t max_candidates = 0;     // > 0: only the best this many candidates enter NMS (ultralytics' max_nms)
  int per_class_candidates = 0;   // > 0: per class, only the best this many (PicoDet's candidate_size)
  int per_class_keep = 0;         // > 0: per class, keep at most this many (PicoDet's keep_top_k)
  float iou_eps = 0;              // added to the IoU's denominator (PicoDet)
  bool none = false;              // an NMS-free head: the boxes as decoded, best first, at most max_detections
};

// Every box scoring above `score` (YOLOX: at least `score`) as the layout says, and the rule its family's NMS
// follows: the layout's row of meta/tables.h kLayouts (decode.cc). Checks the output shapes against the layout,
// naming both.
std::vector<Candidate> Decode(const std::vector<Tensor>& outputs, const ModelInfo& info, const Postprocess& p,
                              float score, NmsRule* rule);

// Class-aware greedy NMS: per class, best score first, a box is dropped when its IoU with a kept box of its
// class is above `iou`. Returns the kept boxes, best first (ties: decode order), at most max_detections (nms.cc).
std::vector<Candidate> Nms(std::vector<Candidate> candidates, float iou, const NmsRule& rule, int max_detections);

// An oriented box: centre, size and angle (radians), in model input pixels (obb).
struct RotatedBox {
  float cx, cy, w, h, angle;
};

// The rotated box of `anchor` in an obb output 0 [1, 4 + classes + 1, anchors] (rotated.cc).
RotatedBox RotatedOf(const Tensor& y0, int classes, int64_t anchor);

// ultralytics' rotated NMS: per class, best score first, a box is dropped when any better candidate of its class
// (kept or not: Fast NMS) has a ProbIoU with it above `iou`. At most max_detections, best first (rotated.cc).
std::vector<Candidate> RotatedNms(std::vector<Candidate> candidates, const Tensor& y0, int classes, float iou,
                                  const NmsRule& rule, int max_detections);

// The instance mask of a yolov8 segment detection (masks.cc): sigmoid(coefficients . prototypes) > 0.5, sampled
// bilinearly at each image pixel's centre mapped into the prototypes, within the box.
Mask InstanceMask(const Tensor& protos, const float* coefficients, int64_t coefficient_stride,
                  const Detection& box, const ImageTransform& t, int input_width, int input_height);

}  // namespace detect
}  // namespace tvm_ncnn
