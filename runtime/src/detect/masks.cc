// Instance masks of YOLOv8/11 segment models: the mask is sigmoid(coefficients . prototypes), where the
// prototypes are a [M, H/4, W/4] output and the coefficients come with each box. ultralytics upsamples the logits
// to the image (bilinear), thresholds them at 0 and crops to the box (ops.process_mask_native); here each image
// pixel's centre is mapped through the letterbox into the prototype grid and the logit is sampled there,
// bilinearly, once -- the same picture without building an image-sized float map per detection.
#include <algorithm>
#include <cmath>

#include "detect/detect_internal.h"

namespace tvm_ncnn {
namespace detect {

Mask InstanceMask(const Tensor& protos, const float* coefficients, int64_t coefficient_stride,
                  const Detection& box, const ImageTransform& t, int input_width, int input_height) {
  const int64_t m = protos.shape[1], ph = protos.shape[2], pw = protos.shape[3];
  Mask mask;
  // ultralytics' crop keeps pixel columns x with x1 <= x < x2 (and rows alike).
  mask.x = static_cast<int>(std::ceil(box.x1));
  mask.y = static_cast<int>(std::ceil(box.y1));
  mask.width = std::max(0, static_cast<int>(std::ceil(box.x2)) - mask.x);
  mask.height = std::max(0, static_cast<int>(std::ceil(box.y2)) - mask.y);
  mask.pixels.assign(static_cast<size_t>(mask.width) * mask.height, 0);
  if (mask.width == 0 || mask.height == 0) return mask;

  // Prototype-grid coordinates (align_corners=False: centre of cell i at i + 0.5) of each image column and row.
  const double gx = static_cast<double>(pw) / input_width, gy = static_cast<double>(ph) / input_height;
  auto grid_x = [&](int col) { return ((mask.x + col + 0.5) * t.scale_x + t.offset_x) * gx - 0.5; };
  auto grid_y = [&](int row) { return ((mask.y + row + 0.5) * t.scale_y + t.offset_y) * gy - 0.5; };
  // The logits are needed only on the cells the box's samples touch.
  auto cell = [](double v, int64_t n) { return std::clamp<int64_t>(static_cast<int64_t>(std::floor(v)), 0, n - 1); };
  const int64_t cx0 = cell(grid_x(0), pw), cx1 = std::min(pw - 1, cell(grid_x(mask.width - 1), pw) + 1);
  const int64_t cy0 = cell(grid_y(0), ph), cy1 = std::min(ph - 1, cell(grid_y(mask.height - 1), ph) + 1);
  const int64_t lw = cx1 - cx0 + 1, lh = cy1 - cy0 + 1;
  std::vector<float> logit(static_cast<size_t>(lw * lh), 0.f);
  const float* p = protos.f32();
  for (int64_t k = 0; k < m; ++k) {
    const float c = coefficients[k * coefficient_stride];
    const float* plane = p + k * ph * pw;
    for (int64_t y = 0; y < lh; ++y) {
      const float* row = plane + (cy0 + y) * pw + cx0;
      float* out = logit.data() + y * lw;
      for (int64_t x = 0; x < lw; ++x) out[x] += c * row[x];
    }
  }
  auto at = [&](int64_t x, int64_t y) {  // clamped to the grid's edges, as bilinear interpolation does
    x = std::clamp<int64_t>(x, 0, pw - 1) - cx0;
    y = std::clamp<int64_t>(y, 0, ph - 1) - cy0;
    return logit[static_cast<size_t>(std::clamp<int64_t>(y, 0, lh - 1) * lw + std::clamp<int64_t>(x, 0, lw - 1))];
  };
  for (int row = 0; row < mask.height; ++row) {
    const double fy = std::max(0.0, grid_y(row));
    const int64_t y0 = static_cast<int64_t>(fy);
    const float wy = static_cast<float>(fy - y0);
    for (int col = 0; col < mask.width; ++col) {
      const double fx = std::max(0.0, grid_x(col));
      const int64_t x0 = static_cast<int64_t>(fx);
      const float wx = static_cast<float>(fx - x0);
      const float v = (1 - wy) * ((1 - wx) * at(x0, y0) + wx * at(x0 + 1, y0)) +
                      wy * ((1 - wx) * at(x0, y0 + 1) + wx * at(x0 + 1, y0 + 1));
      if (v > 0) {  // sigmoid(v) > 0.5
        mask.pixels[static_cast<size_t>(row) * mask.width + col] = 1;
        ++mask.area;
      }
    }
  }
  return mask;
}

}  // namespace detect
}  // namespace tvm_ncnn
