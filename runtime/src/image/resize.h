// Bilinear resize of packed 8-bit 3-channel pixels (image/resize.cc), the one resize preprocessing uses.
// Byte for byte the result of ncnn::resize_bilinear_c3 (which the runtime used before, and which the Python
// tests' references follow), but without its three allocations per call: the tables and row buffers live in
// per-thread scratch, so a camera loop of same-sized frames allocates nothing after its first frame.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tvm_ncnn {
namespace image {

// src: src_w x src_h pixels of 3 bytes, rows src_stride bytes apart; dst likewise. Both sides of the source must
// be at least 2 pixels (every output samples two rows and two columns; preprocess.cc doubles a 1-pixel side).
// Any ratio, up or down, either axis independently. Not thread-hostile: the scratch is per thread.
void ResizeBilinear3(const uint8_t* src, int src_w, int src_h, size_t src_stride, uint8_t* dst, int dst_w,
                     int dst_h, size_t dst_stride);

}  // namespace image
}  // namespace tvm_ncnn
