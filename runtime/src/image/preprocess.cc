// Pixels -> model input: the one implementation of preprocessing (runtime.h Preprocess). LoadImage decodes a
// file and comes here; Python's load_image hands its arrays here; so one set of pixels gives one tensor.
//
// Every source is first brought to packed 8-bit RGB or BGR pixels (skipped when it already is 3 channels, at any
// stride), resized bilinearly (image/resize.cc: ncnn's resize_bilinear_c3 to the byte, without its allocations;
// resize is per channel, so the order it runs in does not change a value), placed on an H x W canvas (crop,
// letterbox or height; image/place.cc says where, and H x W for a dynamic input), widened to float in the model's
// channel order and normalized by ncnn over the canvas.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "internal.h"
#include "mat.h"  // ncnn
#include "image/place.h"
#include "image/resize.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

int Channels(PixelFormat f) {
  switch (f) {
    case PixelFormat::kRGB:
    case PixelFormat::kBGR: return 3;
    case PixelFormat::kRGBA:
    case PixelFormat::kBGRA: return 4;
    case PixelFormat::kGray: return 1;
  }
  throw Error("pixels: unknown pixel format " + std::to_string(static_cast<int>(f)));
}

bool RedFirst(PixelFormat f) { return f == PixelFormat::kRGB || f == PixelFormat::kRGBA; }

// The 8-bit buffers a frame passes through, kept per thread: a loop of same-sized frames reuses them instead of
// allocating frame-sized buffers (and faulting in fresh pages) every time.
std::vector<uint8_t>& Scratch(int which) {
  thread_local std::vector<uint8_t> buffers[3];
  return buffers[which];
}
uint8_t* ScratchOf(int which, size_t n) {
  std::vector<uint8_t>& v = Scratch(which);
  if (v.size() < n) v.resize(n);
  return v.data();
}
// Kept up to a camera frame's worth (4K RGB is 25 MB); a one-off huge image's buffers are handed back.
struct TrimScratch {
  ~TrimScratch() {
    constexpr size_t kKeep = size_t(32) << 20;
    for (int i = 0; i < 3; ++i) {
      if (Scratch(i).capacity() > kKeep) std::vector<uint8_t>().swap(Scratch(i));
    }
  }
};

// Packed 3-channel copy of `p` in the model's order, into scratch buffer 0 (reused frame to frame). A side of 1
// pixel is doubled: the bilinear resize blends two rows and two columns (image/resize.h); a copied pixel resizes
// to the same constant.
const uint8_t* ToModelOrder(const Pixels& p, size_t stride, bool model_bgr, int* w_out, int* h_out) {
  const int w2 = std::max(p.width, 2), h2 = std::max(p.height, 2);
  const int ch = Channels(p.format);
  const bool swap = ch > 1 && RedFirst(p.format) == model_bgr;
  uint8_t* const out = ScratchOf(0, static_cast<size_t>(w2) * h2 * 3);
  for (int y = 0; y < h2; ++y) {
    const uint8_t* row = p.data + stride * std::min(y, p.height - 1);
    uint8_t* o = out + static_cast<size_t>(y) * w2 * 3;
    for (int x = 0; x < w2; ++x, o += 3) {
      const uint8_t* s = row + static_cast<size_t>(std::min(x, p.width - 1)) * ch;
      if (ch == 1) {
        o[0] = o[1] = o[2] = s[0];
      } else {
        o[0] = s[swap ? 2 : 0];
        o[1] = s[1];
        o[2] = s[swap ? 0 : 2];
      }
    }
  }
  *w_out = w2;
  *h_out = h2;
  return out;
}

void Resize(const uint8_t* src, int sw, int sh, size_t sstride, uint8_t* dst, int dw, int dh, size_t dstride) {
  if (sw == dw && sh == dh) {  // bilinear at scale 1 samples every pixel exactly: copy
    for (int y = 0; y < sh; ++y) std::memcpy(dst + dstride * y, src + sstride * y, static_cast<size_t>(sw) * 3);
    return;
  }
  image::ResizeBilinear3(src, sw, sh, sstride, dst, dw, dh, dstride);
}

// (v - mean[c]) * norm[c] for every byte v of each channel c, as ncnn computes it, 3 x 256 floats; kept per thread
// for the last mean/norm (a camera loop's model), so a steady loop computes it once.
const float* NormalizeTable(const float mean[3], const float norm[3]) {
  thread_local float table[3 * 256], last_mean[3], last_norm[3];
  thread_local bool made = false;
  if (made && std::memcmp(last_mean, mean, sizeof(last_mean)) == 0 &&
      std::memcmp(last_norm, norm, sizeof(last_norm)) == 0) {
    return table;
  }
  ncnn::Mat m(256, 1, 3, static_cast<size_t>(4u));
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) m.channel(c)[v] = static_cast<float>(v);
  }
  m.substract_mean_normalize(mean, norm);
  for (int c = 0; c < 3; ++c) std::memcpy(table + 256 * c, m.channel(c).data, sizeof(float) * 256);
  std::memcpy(last_mean, mean, sizeof(last_mean));
  std::memcpy(last_norm, norm, sizeof(last_norm));
  made = true;
  return table;
}

// The pixel-side checks and where the image lands (PlaceImage): the tensor's size is known before any pixel is
// read, so a dynamic input's tensor is allocated at its size for this image.
ImageTransform PlacePixels(const Pixels& p, const ModelInfo& info, const std::string& where) {
  image::ImageInput(info, where);
  auto name = [&] { return where + ": "; };  // built only when thrown: this runs on every frame
  const int ch = Channels(p.format);
  if (p.width < 1 || p.height < 1) {
    throw Error(name() + std::to_string(p.width) + "x" + std::to_string(p.height) + " pixels is empty");
  }
  if (static_cast<int64_t>(p.width) * p.height > image::kMaxPixels) {
    throw Error(name() + std::to_string(p.width) + "x" + std::to_string(p.height) +
                " pixels is over the 100 megapixel limit");
  }
  if (p.data == nullptr) throw Error(name() + "no pixel data (null pointer)");
  const size_t packed = static_cast<size_t>(p.width) * ch;
  const size_t stride = p.stride == 0 ? packed : p.stride;
  if (stride < packed) {
    throw Error(name() + "row stride " + std::to_string(stride) + " bytes is less than width x channels (" +
                std::to_string(p.width) + " x " + std::to_string(ch) + ")");
  }
  if (stride > static_cast<size_t>(INT32_MAX)) {
    throw Error(name() + "row stride " + std::to_string(stride) + " bytes is too large");
  }
  return PlaceImage(p.width, p.height, info);
}

// Pixels checked by PlacePixels -> the 3 x H x W floats at dst (H x W: t's input size).
void FillPixels(const Pixels& p, const ModelInfo& info, const ImageTransform& t, float* dst) {
  const TrimScratch trim;
  const image::InputGeometry in = image::ImageInput(info, "pixels");
  const int ch = Channels(p.format);
  const size_t stride = p.stride == 0 ? static_cast<size_t>(p.width) * ch : p.stride;
  const int W = t.input_width, H = t.input_height;

  // Source in the model's order: the caller's own rows when they already are (3 channels, right order, resizable).
  const uint8_t* src = p.data;
  int sw = p.width, sh = p.height;
  size_t sstride = stride;
  // 3 channels in the other order are resized as they are (the resize is per channel) and swapped by ncnn while
  // it widens them to float below: one pass over the pixels fewer than swapping first (OpenCV's and simpleocv's
  // BGR frames and files into an RGB model).
  const bool direct = ch == 3 && p.width > 1 && p.height > 1;
  const bool swap = direct && RedFirst(p.format) == in.bgr;
  if (!direct) {
    src = ToModelOrder(p, stride, in.bgr, &sw, &sh);
    sstride = static_cast<size_t>(sw) * 3;
  }

  // The H x W canvas of 8-bit pixels the model sees, before mean/std.
  const size_t canvas_size = static_cast<size_t>(W) * H * 3;
  uint8_t* const canvas = ScratchOf(1, canvas_size);
  const size_t cstride = static_cast<size_t>(W) * 3;
  const Preprocess& pp = info.preprocess;
  if (in.resize == ResizeMode::kCrop) {
    // Resize the whole image, then cut: cutting first would move the sample points (not torchvision's result).
    const int rw = t.resized_width, rh = t.resized_height;
    uint8_t* const resized = ScratchOf(2, static_cast<size_t>(rw) * rh * 3);
    Resize(src, sw, sh, sstride, resized, rw, rh, static_cast<size_t>(rw) * 3);
    const int left = static_cast<int>(-t.offset_x), top = static_cast<int>(-t.offset_y);
    for (int y = 0; y < H; ++y) {
      const uint8_t* row = resized + (static_cast<size_t>(top + y) * rw + left) * 3;
      std::memcpy(canvas + cstride * y, row, cstride);
    }
  } else if (in.resize == ResizeMode::kLetterbox) {
    std::fill(canvas, canvas + canvas_size, static_cast<uint8_t>(pp.pad));
    const size_t corner = static_cast<size_t>(t.offset_y) * cstride + static_cast<size_t>(t.offset_x) * 3;
    Resize(src, sw, sh, sstride, canvas + corner, t.resized_width, t.resized_height, cstride);
  } else if (in.resize == ResizeMode::kHeight) {
    // The line on the left; the columns right of it are filled in float below (the fill need not be a byte).
    Resize(src, sw, sh, sstride, canvas, t.resized_width, H, cstride);
  } else {
    Resize(src, sw, sh, sstride, canvas, W, H, cstride);
  }

  const size_t plane = static_cast<size_t>(W) * H;
  // Each output value depends only on its byte and channel: a table of the 256 values per channel, made by ncnn's
  // own substract_mean_normalize (so the values are ncnn's, bit for bit), then one lookup per element written
  // straight into the tensor -- no float image to allocate, and none of the layer ncnn creates per call.
  const float* lut = NormalizeTable(in.mean, in.norm);
  float* c0 = dst;
  float* c1 = c0 + plane;
  float* c2 = c1 + plane;
  const int first = swap ? 2 : 0, last = swap ? 0 : 2;
  for (size_t i = 0; i < plane; ++i) {
    const uint8_t* px = canvas + 3 * i;
    c0[i] = lut[px[first]];
    c1[i] = lut[256 + px[1]];
    c2[i] = lut[512 + px[last]];
  }
  if (in.resize == ResizeMode::kHeight && t.resized_width < W) {
    // (fill - mean) * norm as ncnn normalizes a pixel; no fill: 0 in the tensor, as PaddleOCR pads.
    for (int c = 0; c < 3; ++c) {
      const float v = pp.fill < 0 ? 0.f : (static_cast<float>(pp.fill) - in.mean[c]) * in.norm[c];
      float* const channel = dst + c * plane;
      for (int y = 0; y < H; ++y) std::fill(channel + y * W + t.resized_width, channel + (y + 1) * W, v);
    }
  }
}

}  // namespace

Tensor PreprocessPixels(const Pixels& p, const ModelInfo& info, ImageTransform* transform, const std::string& where) {
  const ImageTransform t = PlacePixels(p, info, where);
  Tensor out({1, 3, t.input_height, t.input_width}, "float32");
  FillPixels(p, info, t, out.f32());
  if (transform) *transform = t;
  return out;
}

Tensor PreprocessImage(const Pixels& pixels, const ModelInfo& info, ImageTransform* transform) {
  return PreprocessPixels(pixels, info, transform, "pixels");
}

void PreprocessImage(const Pixels& pixels, const ModelInfo& info, Tensor* out, ImageTransform* transform) {
  if (out == nullptr) throw Error("pixels: the output tensor is null");
  const ImageTransform t = PlacePixels(pixels, info, "pixels");
  const int64_t shape[] = {1, 3, t.input_height, t.input_width};
  const size_t bytes = static_cast<size_t>(3) * t.input_height * t.input_width * sizeof(float);
  if (!std::equal(out->shape.begin(), out->shape.end(), std::begin(shape), std::end(shape)) ||
      out->dtype != "float32" || out->bytes.size() != bytes) {
    // once: the same shape next frame (a dynamic input: the same frame size)
    *out = Tensor(std::vector<int64_t>(std::begin(shape), std::end(shape)), "float32");
  }
  FillPixels(pixels, info, t, out->f32());
  if (transform) *transform = t;
}

void PreprocessImage(const Pixels& pixels, const ModelInfo& info, float* out, ImageTransform* transform) {
  if (out == nullptr) throw Error("pixels: the output buffer is null");
  const ImageTransform t = PlacePixels(pixels, info, "pixels");
  FillPixels(pixels, info, t, out);
  if (transform) *transform = t;
}

}  // namespace tvm_ncnn
