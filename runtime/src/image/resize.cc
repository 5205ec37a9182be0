// Bilinear resize of 8-bit 3-channel pixels, giving exactly ncnn::resize_bilinear_c3's bytes (resize.h says why
// we have our own). The arithmetic is ncnn's; the reasons it must be followed to the bit:
//
//   * Sample positions are pixel centres, as OpenCV's INTER_LINEAR: destination i samples the source at
//     (i + 0.5) * scale - 0.5, computed in double and rounded to float; its floor is the first of the two source
//     pixels blended and the rest is the second one's share. A position before the first centre takes the edge
//     pixel alone; one at or past the last centre takes the last pixel alone, as the second of the last pair.
//   * Shares become 11-bit fixed-point weights (1.0 = 2048), rounded half up, so a pair may sum to 2049.
//   * Across: pixel * weight, summed over the pair, >> 4 -- a 16-bit value in 1/128ths of a level.
//   * Down: each row's 16-bit value times its 16-bit weight keeps only the high half (>> 16, per term), the two
//     terms are summed, + 2 and >> 2 rounds the quarters to a level. No term is negative and no sum passes 255,
//     so there is nothing to saturate.
//
// Speed: the vertical pass (one multiply-high per byte out) is written as a plain loop over 16-bit lanes that
// GCC vectorizes (pmulhw on x86's SSE2; smull and a pick of the high halves on NEON). The horizontal pass gathers
// two pixels per output pixel from arbitrary offsets, which neither SSE2 nor plain NEON vectorizes cheaply: it
// stays scalar, as ncnn's is on x86. (ncnn's NEON build does that pass with lane loads and one 4-lane
// multiply-add per pixel, so on aarch64 this one may be somewhat slower when downscaling, where that pass
// dominates.)
// A source row is resampled across once and reused by every output row that blends it.
#include "image/resize.h"

#include <cmath>
#include <utility>
#include <vector>

namespace tvm_ncnn {
namespace image {
namespace {

constexpr float kWeightOne = 1 << 11;  // fixed-point 1.0 of a weight
constexpr int kAcrossShift = 4;         // across-pass sums (8 + 11 bits) kept in 16 bits: 7 fraction bits

// Where destination index i samples the source, in source pixels. ncnn's own build fuses the multiply and the
// subtract into one FMA wherever the target has a fast one (its -Ofast contracts; aarch64 always has FMA, x86's
// baseline does not), and one rounding fewer can move a position across a weight's rounding boundary: follow the
// same target rule rather than whatever this file's flags would contract. (Fused or not changed no weight for any
// pair of sizes up to 2000 when checked; the rule is for the sizes beyond.)
float SamplePosition(int i, double scale) {
  const double centre = i + 0.5;
#ifdef __FP_FAST_FMA
  return static_cast<float>(std::fma(centre, scale, -0.5));
#else
  return static_cast<float>(centre * scale - 0.5);
#endif
}

// A share in [0, 1] as a weight, rounded half up (share * 2048 is exact: a power of two).
int16_t Weight(float share) { return static_cast<int16_t>(static_cast<int>(share * kWeightOne + 0.5f)); }

// One axis's sampling, made once per (source, destination) size and kept: per destination index, where the
// first of its two source pixels starts (in units of `step`) and the two weights.
struct AxisTaps {
  int made_src = -1, made_dst = -1;
  std::vector<int> first;
  std::vector<int16_t> weights;  // 2 per destination index: the first pixel's, the second's

  void Make(int src, int dst, int step) {
    if (src == made_src && dst == made_dst) return;  // a camera loop: the same sizes every frame
    if (first.size() < static_cast<size_t>(dst)) {   // grown, never shrunk: no allocation for a smaller size
      first.resize(dst);
      weights.resize(2 * static_cast<size_t>(dst));
    }
    const double scale = static_cast<double>(src) / dst;
    for (int i = 0; i < dst; ++i) {
      const float pos = SamplePosition(i, scale);
      int lo = static_cast<int>(std::floor(pos));
      float share = pos - static_cast<float>(lo);  // exact: the fraction of a float is a float
      if (lo < 0) {
        lo = 0;
        share = 0.f;
      }
      if (lo > src - 2) {
        lo = src - 2;
        share = 1.f;
      }
      first[i] = lo * step;
      weights[2 * i] = Weight(1.f - share);
      weights[2 * i + 1] = Weight(share);
    }
    made_src = src;
    made_dst = dst;
  }

  size_t Bytes() const { return first.capacity() * sizeof(int) + weights.capacity() * sizeof(int16_t); }
};

// The per-thread state: both axes' tables and the two resampled source rows (16-bit, 3 per output pixel).
struct ResizeScratch {
  AxisTaps across, down;
  std::vector<int16_t> rows;

  // A one-off enormous width (the tables and rows grow with the output width and height, 12 bytes and more per
  // pixel) is handed back rather than kept for the thread's life; any camera size stays far below this.
  void TrimIfHuge() {
    constexpr size_t kKeep = size_t(4) << 20;
    if (across.Bytes() + down.Bytes() + rows.capacity() * sizeof(int16_t) <= kKeep) return;
    *this = ResizeScratch();  // (move-assigns: the old buffers are freed, the tables marked unmade)
  }
};

ResizeScratch& ThreadScratch() {
  thread_local ResizeScratch scratch;
  return scratch;
}

// One source row resampled across into `out` (3 values per output pixel).
void ResampleRow(const uint8_t* __restrict row, const AxisTaps& across, int dst_w, int16_t* __restrict out) {
  const int* first = across.first.data();
  const int16_t* w = across.weights.data();
  for (int i = 0; i < dst_w; ++i, out += 3) {
    const uint8_t* p = row + first[i];
    const int w0 = w[2 * i], w1 = w[2 * i + 1];
    out[0] = static_cast<int16_t>((p[0] * w0 + p[3] * w1) >> kAcrossShift);
    out[1] = static_cast<int16_t>((p[1] * w0 + p[4] * w1) >> kAcrossShift);
    out[2] = static_cast<int16_t>((p[2] * w0 + p[5] * w1) >> kAcrossShift);
  }
}

// Two source rows at the same columns (the usual case when downscaling: each output row needs two new rows):
// one walk over the tables for both.
void ResampleRowPair(const uint8_t* __restrict row0, const uint8_t* __restrict row1, const AxisTaps& across,
                     int dst_w, int16_t* __restrict out0, int16_t* __restrict out1) {
  const int* first = across.first.data();
  const int16_t* w = across.weights.data();
  for (int i = 0; i < dst_w; ++i, out0 += 3, out1 += 3) {
    const uint8_t* p = row0 + first[i];
    const uint8_t* q = row1 + first[i];
    const int w0 = w[2 * i], w1 = w[2 * i + 1];
    out0[0] = static_cast<int16_t>((p[0] * w0 + p[3] * w1) >> kAcrossShift);
    out0[1] = static_cast<int16_t>((p[1] * w0 + p[4] * w1) >> kAcrossShift);
    out0[2] = static_cast<int16_t>((p[2] * w0 + p[5] * w1) >> kAcrossShift);
    out1[0] = static_cast<int16_t>((q[0] * w0 + q[3] * w1) >> kAcrossShift);
    out1[1] = static_cast<int16_t>((q[1] * w0 + q[4] * w1) >> kAcrossShift);
    out1[2] = static_cast<int16_t>((q[2] * w0 + q[5] * w1) >> kAcrossShift);
  }
}

// Two resampled rows blended down into n output bytes. Kept in 16-bit lanes (a 16x16 multiply's high half per
// term) so the vectorizer can use one multiply-high instruction per 8 lanes; the arithmetic is exactly the
// scalar one, so the vectorized and remainder iterations agree.
void BlendRows(const int16_t* __restrict top, const int16_t* __restrict bottom, int n, int16_t w_top,
               int16_t w_bottom, uint8_t* __restrict out) {
  for (int i = 0; i < n; ++i) {
    const int16_t t = static_cast<int16_t>((top[i] * w_top) >> 16);
    const int16_t b = static_cast<int16_t>((bottom[i] * w_bottom) >> 16);
    out[i] = static_cast<uint8_t>((t + b + 2) >> 2);
  }
}

}  // namespace

void ResizeBilinear3(const uint8_t* src, int src_w, int src_h, size_t src_stride, uint8_t* dst, int dst_w,
                     int dst_h, size_t dst_stride) {
  ResizeScratch& s = ThreadScratch();
  s.across.Make(src_w, dst_w, 3);
  s.down.Make(src_h, dst_h, 1);
  const size_t n = static_cast<size_t>(dst_w) * 3;
  if (s.rows.size() < 2 * n) s.rows.resize(2 * n);
  int16_t* top = s.rows.data();
  int16_t* bottom = top + n;

  // `top` holds source row top_row resampled, `bottom` the row below it. Output rows only move down the source,
  // so a row is resampled once: kept when the next output blends the same pair, moved up when it blends the
  // next pair (upscaling), both made anew when it skips ahead (downscaling).
  int top_row = -2;
  const int* first = s.down.first.data();
  const int16_t* w = s.down.weights.data();
  for (int y = 0; y < dst_h; ++y) {
    const int sy = first[y];
    if (sy == top_row + 1) {
      std::swap(top, bottom);
      ResampleRow(src + src_stride * (sy + 1), s.across, dst_w, bottom);
    } else if (sy != top_row) {
      ResampleRowPair(src + src_stride * sy, src + src_stride * (sy + 1), s.across, dst_w, top, bottom);
    }
    top_row = sy;
    BlendRows(top, bottom, static_cast<int>(n), w[2 * y], w[2 * y + 1], dst + dst_stride * y);
  }
  s.TrimIfHuge();
}

}  // namespace image
}  // namespace tvm_ncnn
