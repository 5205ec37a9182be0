// tvm-ncnn post-processing: a detector's raw outputs -> boxes, scores, classes (and masks or keypoints) in the
// pixels of the original image. One implementation, used by deploy_app, by Python (tvm_ncnn.load(...).detect)
// and by C++ apps:
//
//   tvm_ncnn::ImageTransform where;
//   tvm_ncnn::Tensor x = tvm_ncnn::LoadImage("street.jpg", model.info(), &where);
//   std::vector<tvm_ncnn::Detection> found = tvm_ncnn::Detect(model.Run({x}), model.info(), where);
//   tvm_ncnn::DrawDetections("street.jpg", found, "boxes.jpg");   // or, on pixels in memory:
//   tvm_ncnn::Image frame = tvm_ncnn::DecodeImage("street.jpg");
//   tvm_ncnn::DrawDetections(&frame, found);
//
// What the outputs mean is recorded at export (metadata "postprocess", runtime/FORMAT.md): the task, the output
// layout, default thresholds, YOLOX/PicoDet strides, keypoint shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// What the outputs mean: ModelInfo::postprocess (tvm_ncnn/runtime.h), read from the metadata at load.

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
  // obb: the oriented box cx, cy, w, h, angle (radians, the model's own; original image pixels, not clipped);
  // x1..y2 is then its axis-aligned bounding box, clipped. Empty for the other tasks.
  std::vector<float> rbox;
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

// The tasks Detect reads ("detect", "segment", "pose", "obb": Postprocess::task of a detector), in the order export
// lists them, for messages such as "export with --task detect|segment|pose".
std::vector<std::string> DetectorTasks();

// Writes the image at image_path (JPEG/PNG/BMP) with the detections drawn -- boxes, "label score", masks
// tinted, keypoints as dots, oriented boxes as rotated outlines -- to out_path (.jpg/.jpeg or .png). Throws Error on an unreadable image or a path
// that cannot be written.
void DrawDetections(const std::string& image_path, const std::vector<Detection>& detections,
                    const std::string& out_path);

// The same drawing onto pixels in memory, in place: an Image of kBGR (DecodeImage's) or kRGB pixels, e.g. a
// camera frame to show or stream. Throws Error for other formats or an image whose bytes do not fit its size.
void DrawDetections(Image* image, const std::vector<Detection>& detections);

// Writes an Image (kBGR or kRGB) to a .jpg/.jpeg or .png file.
void SaveImage(const Image& image, const std::string& path);

}  // namespace tvm_ncnn
