// image/resize.cc gives ncnn::resize_bilinear_c3's bytes exactly (the preprocessing references in tests/python
// follow ncnn's), over random and chosen sizes: up and down, scale 1 on one axis, 2-pixel sides, large ratios,
// padded strides on both sides (whose padding must stay untouched). And a repeated size allocates nothing: the
// point of having our own (issue #27).
//
// Built from resize.cc itself and ncnn's static library (the runtime neither exports the resize nor ncnn's
// symbols); see CMakeLists.txt.
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "image/resize.h"
#include "mat.h"  // ncnn

extern "C" {
void* __libc_malloc(size_t);
}

// Every malloc of the process while g_counting (operator new goes through malloc in libstdc++).
static std::atomic<bool> g_counting{false};
static std::atomic<long> g_allocations{0};
extern "C" {
void* malloc(size_t n) {
  if (g_counting) ++g_allocations;
  return __libc_malloc(n);
}
}

namespace {

struct Case {
  int src_w, src_h, dst_w, dst_h;
  int src_pad = 0, dst_pad = 0;  // bytes after each row
};

// Resizes `c` with both and compares every byte of the destination, padding included. Returns false on a
// mismatch (after reporting the first one).
bool Compare(const Case& c, std::mt19937& rng) {
  const size_t src_stride = static_cast<size_t>(c.src_w) * 3 + c.src_pad;
  const size_t dst_stride = static_cast<size_t>(c.dst_w) * 3 + c.dst_pad;
  std::vector<uint8_t> src(src_stride * c.src_h);
  for (uint8_t& b : src) b = static_cast<uint8_t>(rng());
  // Flat areas and extremes too: 0 and 255 are where a saturation slip would show.
  if (rng() % 4 == 0) {
    for (size_t i = 0; i < src.size(); ++i) src[i] = (i / 97) % 2 ? 255 : 0;
  }
  std::vector<uint8_t> ours(dst_stride * c.dst_h, 0xa5), theirs(dst_stride * c.dst_h, 0xa5);
  tvm_ncnn::image::ResizeBilinear3(src.data(), c.src_w, c.src_h, src_stride, ours.data(), c.dst_w, c.dst_h,
                                   dst_stride);
  ncnn::resize_bilinear_c3(src.data(), c.src_w, c.src_h, static_cast<int>(src_stride), theirs.data(), c.dst_w,
                           c.dst_h, static_cast<int>(dst_stride));
  if (ours == theirs) return true;
  size_t i = 0;
  while (ours[i] == theirs[i]) ++i;
  std::fprintf(stderr, "FAILED %dx%d (stride %zu) -> %dx%d (stride %zu): byte %zu (row %zu) is %d, ncnn's %d\n",
               c.src_w, c.src_h, src_stride, c.dst_w, c.dst_h, dst_stride, i, i / dst_stride, ours[i], theirs[i]);
  ++g_failures;
  return false;
}

}  // namespace

int main() {
  std::mt19937 rng(27);
  auto side = [&](int lo, int hi) { return lo + static_cast<int>(rng() % static_cast<unsigned>(hi - lo + 1)); };
  auto pad = [&] { return rng() % 2 ? 0 : side(1, 13); };

  std::vector<Case> cases = {
      {1920, 1080, 64, 48},  {17, 9, 640, 640},  {1280, 720, 640, 360}, {640, 480, 224, 224},
      {2, 2, 2, 2},          {2, 2, 700, 3},     {700, 2, 2, 2},        {2, 700, 700, 2},
      {3, 2, 2, 3},          {640, 480, 640, 240}, {640, 480, 320, 480}, {224, 224, 640, 640},
      {1000, 1000, 999, 1001}, {5, 7, 5, 21},    {33, 2, 66, 2},        {2, 2, 1, 1},
      {640, 360, 1280, 720, 5, 3}, {1920, 1080, 64, 48, 1, 7}, {17, 9, 640, 640, 11, 1},
  };
  for (int i = 0; i < 400; ++i) {
    Case c{side(2, 700), side(2, 700), side(2, 700), side(2, 700), pad(), pad()};
    switch (i % 5) {  // scale 1 on one axis, pure down, pure up, 2-pixel sides; else anything
      case 0: (rng() % 2 ? c.dst_w = c.src_w : c.dst_h = c.src_h); break;
      case 1: c.dst_w = side(1, c.src_w), c.dst_h = side(1, c.src_h); break;
      case 2: c.dst_w = side(c.src_w, 700), c.dst_h = side(c.src_h, 700); break;
      case 3: (rng() % 2 ? c.src_w : c.src_h) = 2; break;
      default: break;
    }
    cases.push_back(c);
  }
  int mismatched = 0;
  for (const Case& c : cases) mismatched += !Compare(c, rng);
  std::printf("%zu cases, %d differ from ncnn\n", cases.size(), mismatched);

  // The same size again, after other sizes grew the scratch and with a smaller one in between: no allocation.
  const Case c{1280, 720, 640, 360};
  std::vector<uint8_t> src(static_cast<size_t>(c.src_w) * c.src_h * 3, 7);
  std::vector<uint8_t> dst(static_cast<size_t>(c.dst_w) * c.dst_h * 3);
  auto resize = [&](int dw, int dh) {
    tvm_ncnn::image::ResizeBilinear3(src.data(), c.src_w, c.src_h, static_cast<size_t>(c.src_w) * 3, dst.data(),
                                     dw, dh, static_cast<size_t>(dw) * 3);
  };
  resize(c.dst_w, c.dst_h);
  g_counting = true;
  resize(c.dst_w, c.dst_h);
  resize(64, 48);
  resize(c.dst_w, c.dst_h);
  g_counting = false;
  std::printf("allocations in 3 resizes after the first: %ld\n", g_allocations.load());
  CHECK(g_allocations == 0);
  return Finish("test_resize");
}
