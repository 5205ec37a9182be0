// The names model.so's metadata, Options, deploy_app and the Python SDK share, one table per fact: precisions,
// tasks, detector layouts, resize modes. Every check of one of these names and every message that lists them
// reads the table here; no other file of the runtime spells the list. The SDK's tables
// (sdk_python/tvm_ncnn/meta/: precision.py, postprocess.py, preprocess.py) hold the same names in the same order,
// and a Python test compares them with these through tvm_ncnn.tables (ffi_api.cc).
//
// A new detector family: its row in kLayouts (and its decoder's declaration above it), its decoder (detect/), the
// Python row. A new precision: its row in kPrecisions, what it sets in ncnn (precision.cc, RunPrecision), the
// Python row.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "detect/detect_internal.h"  // what a decoder returns (Candidate) and its family's NMS (NmsRule)
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// ---- Precisions (ModelInfo::precision as exported; Options::precision, deploy_app --precision at load)
enum class Precision { kFp32, kFp16, kInt8 };
struct PrecisionRow {
  const char* name;
  Precision id;
  bool load;                  // load may switch any model to it; the others run only as exported
  const char* exported_only;  // !load: what a model needs to run at it, for the message when it was not exported so
};
inline constexpr PrecisionRow kPrecisions[] = {
    {"fp32", Precision::kFp32, true, nullptr},
    {"fp16", Precision::kFp16, true, nullptr},
    {"int8", Precision::kInt8, false,
     "int8 needs calibration at export (tvm-ncnn export --precision int8 --calibration DIR)"},
};

// ---- Tasks (Postprocess::task; "" is none recorded, not a row)
enum class Task { kClassify, kDetect, kSegment, kPose, kObb };
struct TaskRow {
  const char* name;
  Task id;
  bool boxes;   // Detect decodes its outputs into boxes (detect/)
  bool extras;  // its outputs carry more per box (mask coefficients, keypoints): only a layout with extras has them
};
inline constexpr TaskRow kTasks[] = {
    {"classify", Task::kClassify, false, false},
    {"detect", Task::kDetect, true, false},
    {"segment", Task::kSegment, true, true},
    {"pose", Task::kPose, true, true},
    {"obb", Task::kObb, true, true},  // the extra channel is the angle; rotated NMS (detect/rotated.cc)
};

// ---- Detector layouts (Postprocess::layout): each family's decoder (detect/decode.cc) and how its own NMS runs
namespace detect {
using Decoder = std::vector<Candidate> (*)(const std::vector<Tensor>& outputs, const ModelInfo& info,
                                           const Postprocess& p, float score);
// Every box scoring above `score` (YOLOX: at least `score`), in model input pixels. Each checks the output shapes
// against its layout, naming both.
std::vector<Candidate> DecodeYoloV8(const std::vector<Tensor>&, const ModelInfo&, const Postprocess&, float);
std::vector<Candidate> DecodeYoloV5(const std::vector<Tensor>&, const ModelInfo&, const Postprocess&, float);
std::vector<Candidate> DecodeYoloX(const std::vector<Tensor>&, const ModelInfo&, const Postprocess&, float);
std::vector<Candidate> DecodePicoDet(const std::vector<Tensor>&, const ModelInfo&, const Postprocess&, float);
std::vector<Candidate> DecodeEnd2End(const std::vector<Tensor>&, const ModelInfo&, const Postprocess&, float);
}  // namespace detect

struct LayoutRow {
  const char* name;
  detect::Decoder decode;
  detect::NmsRule nms;  // {max_candidates, per_class_candidates, per_class_keep, iou_eps, none}
  bool strides;         // the decoder needs Postprocess::strides
  bool extras;          // output 0 is [1, 4 + classes + extra, anchors]: the extra channels are mask coefficients
                        // (segment), keypoints (pose) or the angle (obb)
};
inline constexpr LayoutRow kLayouts[] = {
    {"yolov8", detect::DecodeYoloV8, {30000, 0, 0, 0.f}, false, true},    // ultralytics' max_nms
    {"yolov5", detect::DecodeYoloV5, {30000, 0, 0, 0.f}, false, false},
    {"yolox", detect::DecodeYoloX, {0, 0, 0, 0.f}, true, false},
    {"picodet", detect::DecodePicoDet, {0, 200, 100, 1e-5f}, true, false},  // candidate_size, keep_top_k
    {"end2end", detect::DecodeEnd2End, {0, 0, 0, 0.f, true}, false, false},  // NMS-free: YOLOv10, YOLO26
};

// ---- Resize modes (Preprocess::resize)
enum class ResizeMode { kStretch, kCrop, kLetterbox, kHeight, kLimit };
struct ResizeRow {
  const char* name;
  ResizeMode id;
};
inline constexpr ResizeRow kResizeModes[] = {
    {"stretch", ResizeMode::kStretch},
    {"crop", ResizeMode::kCrop},
    {"letterbox", ResizeMode::kLetterbox},  // a static H x W, or a dynamic one (ultralytics auto=True)
    {"height", ResizeMode::kHeight},        // text recognisers: static H, dynamic W follows the image
    {"limit", ResizeMode::kLimit},          // DBNet text detectors: dynamic H x W
};

// ---- Reading the tables

// The row named `name`, or nullptr.
template <typename Row, size_t N>
const Row* FindName(const Row (&rows)[N], const std::string& name) {
  for (const Row& r : rows) {
    if (name == r.name) return &r;
  }
  return nullptr;
}

// The name of the row with this id.
template <typename Row, size_t N, typename Id>
const char* NameOf(const Row (&rows)[N], Id id) {
  for (const Row& r : rows) {
    if (r.id == id) return r.name;
  }
  return "";
}

// The names in table order; with `only`, the rows whose flag is set.
template <typename Row, size_t N>
std::vector<std::string> Names(const Row (&rows)[N], bool Row::*only = nullptr) {
  std::vector<std::string> out;
  for (const Row& r : rows) {
    if (only == nullptr || r.*only) out.push_back(r.name);
  }
  return out;
}

// As messages list names: "a, b or c" (JoinNames(names, ", ", " or ")), "a|b|c" (JoinNames(names, "|", "|")).
inline std::string JoinNames(const std::vector<std::string>& names, const char* sep, const char* last) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i == 0 ? "" : i + 1 == names.size() ? last : sep) + names[i];
  return out;
}

}  // namespace tvm_ncnn
