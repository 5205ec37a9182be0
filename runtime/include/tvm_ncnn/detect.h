// tvm-ncnn post-processing: a detector's raw outputs -> boxes, scores, classes (and masks or keypoints) in the
// pixels of the original image. One implementation, used by deploy_app, by Python (tvm_ncnn.load(...).detect)
// and by C++ apps:
//
//   tvm_ncnn::ImageTransform where;
//   tvm_ncnn::Tensor x = tvm_ncnn::LoadImage("street.jpg", model.info(), &where);
//   std::vector<tvm_ncnn::Detection> found = tvm_ncnn::Detect(model.Run({x}), model.info(), where);
//   tvm_ncnn::DrawDetections("street.jpg", found, "boxes.jpg");
//
// What the outputs mean is recorded at export (metadata "postprocess", runtime/FORMAT.md): the task, the output
// layout, default thresholds, YOLOX/PicoDet strides, keypoint shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// How to read a model's outputs (the metadata's "postprocess" object).
struct Postprocess {
  // "" (nothing recorded: an older model.so, or a model export could not recognise), "classify", "detect",
  // "segment", "pose".
  std::string task;
  // detect/segment/pose: the output layout.
  //   "yolov8":  ultralytics YOLOv8/11 (and v5u): output 0 [1, 4 + classes + extra, anchors], boxes cx,cy,w,h in
  //              input pixels, class scores already sigmoid; extra = mask coefficients (segment, prototypes in
  //              output 1 [1, M, H/4, W/4]) or keypoints x,y[,visibility] (pose).
  //   "yolov5":  output 0 [1, anchors, 5 + classes]: cx,cy,w,h in input pixels, objectness, class scores;
  //              score = objectness x class score.
  //   "yolox":   output 0 [1, anchors, 5 + classes] before YOLOX's decode: x,y offsets and log w,h per grid
  //              cell of each stride, objectness and class scores already sigmoid.
  //   "picodet": PaddleDetection PicoDet without its post-processing: per stride a score output
  //              [1, cells, classes] and a box output [1, cells, 4 x (reg_max + 1)] (distance distributions).
  std::string layout;
  int classes = 0;             // class count (from the output shapes)
  double score = 0.25;         // default score threshold: a detection needs score > this
  double iou = 0.45;           // default NMS threshold: a box overlapping a better one of its class by more goes
  int max_detections = 300;    // at most this many, best first
  std::vector<int> strides;    // yolox, picodet: the feature map strides, in the order of the anchors/outputs
  int keypoints = 0;           // pose: keypoints per detection
  int keypoint_dims = 0;       // pose: 2 (x, y) or 3 (x, y, visibility)
};

// The postprocess object of a model.so's metadata (ModelInfo::json). Throws Error naming the field when it is
// malformed; task "" when the metadata has none.
Postprocess ReadPostprocess(const ModelInfo& info);

struct Keypoint {
  float x = 0, y = 0;      // original image pixels
  float visibility = 1;    // the model's visibility score (1 for models without one)
};

// An instance mask in original image pixels, over the detection's box only: pixels[row * width + col] is 1
// where the object is, for image pixel (x + col, y + row).
struct Mask {
  int x = 0, y = 0, width = 0, height = 0;
  std::vector<uint8_t> pixels;
  int64_t area = 0;  // pixels set
};

struct Detection {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // original image pixels, clipped to the image
  float score = 0;
  int class_id = 0;
  std::string label;                  // ModelInfo::labels[class_id], "" without labels
  std::vector<Keypoint> keypoints;    // pose
  Mask mask;                          // segment
};

struct DetectOptions {
  double score = -1;        // < 0: the model's default (Postprocess::score)
  double iou = -1;          // < 0: the model's default
  int max_detections = -1;  // < 0: the model's default
};

// Decodes `outputs` (Model::Run's, in order) as the metadata says, keeps boxes scoring above the threshold, runs
// class-aware NMS and maps boxes, masks and keypoints back to the image through `transform` (LoadImage's or
// PreprocessImage's). Best score first. Throws Error when the model records no detection task or the outputs do
// not have the shapes the layout needs.
std::vector<Detection> Detect(const std::vector<Tensor>& outputs, const ModelInfo& info,
                              const ImageTransform& transform, const DetectOptions& options = DetectOptions());

// Writes the image at image_path (JPEG/PNG/BMP) with the detections drawn -- boxes, "label score", masks
// tinted, keypoints as dots -- to out_path (.jpg/.jpeg or .png). Throws Error on an unreadable image or a path
// that cannot be written.
void DrawDetections(const std::string& image_path, const std::vector<Detection>& detections,
                    const std::string& out_path);

}  // namespace tvm_ncnn
