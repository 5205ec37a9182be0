// The geometry of preprocessing (image/place.cc): what the model's metadata asks of an image input, checked once
// per call, and where an image of a given size lands -- the tensor's H x W (which follows the image for a dynamic
// input) and the resize inside it. image/preprocess.cc moves the pixels there.
#pragma once

#include <string>

#include "meta/tables.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace image {

constexpr int64_t kMaxPixels = 100 * 1000 * 1000;  // per image, per input, per resized image
constexpr double kMinCropPct = 0.01;                 // keeps floor(H / crop_pct) * width within int64

struct InputGeometry {
  int height, width;  // the input's static H and W; -1 where the dimension is dynamic
  const DynamicDim* dynamic_h = nullptr;  // the input's dynamic H / W (TensorInfo::dynamic), or nullptr
  const DynamicDim* dynamic_w = nullptr;
  int64_t stride = 1;  // dynamic sides: a multiple of it (Preprocess::stride, else the dimension's multiple)
  int64_t min_width = 0, max_width = 0;  // "height": the tensor width's bounds (metadata, else the input's)
  float mean[3], norm[3];  // in the model's channel order
  bool bgr;
  ResizeMode resize;
};

// The model-side checks, before any pixel is read (LoadImage runs them before decoding). Messages start with
// `where`; one line each, naming the input and the field.
InputGeometry ImageInput(const ModelInfo& info, const std::string& where);

}  // namespace image
}  // namespace tvm_ncnn
