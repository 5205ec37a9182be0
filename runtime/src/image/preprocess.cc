// Pixels -> model input: the one implementation of preprocessing (runtime.h Preprocess). LoadImage decodes a
// file and comes here; Python's load_image hands its arrays here; so one set of pixels gives one tensor.
//
// Every source is first brought to packed 8-bit RGB or BGR pixels (skipped when it already is 3 channels, at any
// stride), resized with ncnn's bilinear resize (resize is per channel, so the order it runs in does not change a
// value), placed on an H x W canvas (crop or letterbox), widened to float in the model's channel order and
// normalized by ncnn over the canvas.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "internal.h"
#include "mat.h"  // ncnn
#include "meta/tables.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

constexpr int64_t kMaxPixels = 100 * 1000 * 1000;  // per image, per input, per resized image
constexpr double kMinCropPct = 0.01;                 // keeps floor(H / crop_pct) * width within int64

struct InputGeometry {
  int height, width;
  float mean[3], norm[3];  // in the model's channel order
  bool bgr;
  ResizeMode resize;
};

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

// Python's round(): half to even. torchvision's CenterCrop uses it for the crop's corner.
int64_t RoundHalfEven(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

// Packed 3-channel copy of `p` in the model's order. A side of 1 pixel is doubled: ncnn's bilinear resize reads
// one pixel before the row when the source is 1 wide (it clamps to srcw - 2); a copied pixel resizes to the same
// constant.
std::vector<uint8_t> ToModelOrder(const Pixels& p, size_t stride, bool model_bgr, int* w_out, int* h_out) {
  const int w2 = std::max(p.width, 2), h2 = std::max(p.height, 2);
  const int ch = Channels(p.format);
  const bool swap = ch > 1 && RedFirst(p.format) == model_bgr;
  std::vector<uint8_t> out(static_cast<size_t>(w2) * h2 * 3);
  for (int y = 0; y < h2; ++y) {
    const uint8_t* row = p.data + stride * std::min(y, p.height - 1);
    uint8_t* o = out.data() + static_cast<size_t>(y) * w2 * 3;
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
  ncnn::resize_bilinear_c3(src, sw, sh, static_cast<int>(sstride), dst, dw, dh, static_cast<int>(dstride));
}

// The model-side checks, before any pixel is read (LoadImage runs them before decoding).
InputGeometry ImageInput(const ModelInfo& info, const std::string& where) {
  const std::string name = where + ": ";
  if (info.inputs.empty()) throw Error(name + "the model has no inputs");
  const TensorInfo& in = info.inputs[0];
  if (in.shape.size() != 4 || in.shape[0] != 1 || in.shape[1] != 3 || in.shape[2] < 1 || in.shape[3] < 1 ||
      in.dtype != "float32") {
    throw Error(name + "model input '" + in.name + "' is " + ShapeString(in.shape) + " " + in.dtype +
                "; an image needs a [1,3,H,W] float32 input (pass a .npy instead)");
  }
  const Preprocess& pp = info.preprocess;
  if (pp.mean.size() != 3 || pp.std.size() != 3) {
    throw Error(name + "model preprocess needs 3 mean and 3 std values");
  }
  if (pp.color != "RGB" && pp.color != "BGR") {
    throw Error(name + "model preprocess color '" + pp.color + "' is not RGB or BGR");
  }
  const ResizeRow* mode = FindName(kResizeModes, pp.resize);
  if (mode == nullptr) {
    throw Error(name + "model preprocess resize '" + pp.resize + "' is not " +
                JoinNames(Names(kResizeModes), ", ", " or "));
  }
  if (mode->id == ResizeMode::kCrop && !(pp.crop_pct >= kMinCropPct && pp.crop_pct <= 1)) {
    throw Error(name + "model preprocess crop_pct " + std::to_string(pp.crop_pct) + " is not in 0.01..1");
  }
  if (mode->id == ResizeMode::kLetterbox && (pp.pad < 0 || pp.pad > 255)) {
    throw Error(name + "model preprocess pad " + std::to_string(pp.pad) + " is not a pixel value 0..255");
  }
  if (in.shape[2] * in.shape[3] > kMaxPixels) {
    throw Error(name + "model input '" + in.name + "' is " + ShapeString(in.shape) + ": over 100 megapixels");
  }
  InputGeometry g;
  g.height = static_cast<int>(in.shape[2]);
  g.width = static_cast<int>(in.shape[3]);
  // mean/std are listed R,G,B; input channel c holds R,G,B or B,G,R as `color` says.
  g.bgr = pp.color == "BGR";
  g.resize = mode->id;
  for (int c = 0; c < 3; ++c) {
    const int rgb = g.bgr ? 2 - c : c;
    if (pp.std[rgb] == 0.f) throw Error(name + "model preprocess std has a zero");
    g.mean[c] = pp.mean[rgb];
    g.norm[c] = 1.f / pp.std[rgb];
  }
  return g;
}

}  // namespace

void CheckImageInput(const ModelInfo& info, const std::string& where) { ImageInput(info, where); }

ImageTransform PlaceImage(int width, int height, const ModelInfo& info) {
  const InputGeometry in = ImageInput(info, "image");
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (width < 1 || height < 1) throw Error("image: " + size + " pixels is empty");
  if (static_cast<int64_t>(width) * height > kMaxPixels) {
    throw Error("image: " + size + " pixels is over the 100 megapixel limit");
  }
  const Preprocess& pp = info.preprocess;
  const int64_t w = width, h = height, W = in.width, H = in.height;
  int64_t rw = W, rh = H, left = 0, top = 0;  // resized size; the resized image's corner on the input
  double r = 0;                                // letterbox: the scale both axes get
  if (in.resize == ResizeMode::kCrop) {
    // Cover th x tw keeping the aspect ratio; the side that needs the larger scale gets its target exactly and
    // the other floor(target * side / this side), as torchvision's Resize(int) does for the longer side.
    const int64_t th = static_cast<int64_t>(std::floor(H / pp.crop_pct));
    const int64_t tw = static_cast<int64_t>(std::floor(W / pp.crop_pct));
    if (th * w >= tw * h) {
      rh = th;
      rw = th * w / h;
    } else {
      rw = tw;
      rh = tw * h / w;
    }
    left = -RoundHalfEven((rw - W) / 2.0);
    top = -RoundHalfEven((rh - H) / 2.0);
  } else if (in.resize == ResizeMode::kLetterbox) {
    // ultralytics LetterBox: r = min(H/h, W/w), sizes rounded (half to even), the padding split with the odd pixel
    // at the bottom / right. Top-left is YOLOX's preproc: the same r, sizes int(w * r) (truncated), padding only
    // right and bottom, and boxes mapped back by dividing by r itself (below).
    r = std::min(static_cast<double>(H) / h, static_cast<double>(W) / w);
    if (pp.letterbox_topleft) {
      rw = std::clamp<int64_t>(static_cast<int64_t>(w * r), 1, W);
      rh = std::clamp<int64_t>(static_cast<int64_t>(h * r), 1, H);
    } else {
      rw = std::clamp<int64_t>(RoundHalfEven(w * r), 1, W);
      rh = std::clamp<int64_t>(RoundHalfEven(h * r), 1, H);
      left = (W - rw) / 2;
      top = (H - rh) / 2;
    }
  }
  if (rw > kMaxPixels || rh > kMaxPixels || rw * rh > kMaxPixels) {
    throw Error("image: resizing " + std::to_string(w) + "x" + std::to_string(h) + " to " + std::to_string(rw) + "x" +
                std::to_string(rh) + " for the crop is over the 100 megapixel limit");
  }
  ImageTransform t;
  t.image_width = width;
  t.image_height = height;
  t.resized_width = static_cast<int>(rw);
  t.resized_height = static_cast<int>(rh);
  const bool yolox = in.resize == ResizeMode::kLetterbox && pp.letterbox_topleft;
  t.scale_x = yolox ? r : static_cast<double>(rw) / w;
  t.scale_y = yolox ? r : static_cast<double>(rh) / h;
  t.offset_x = static_cast<double>(left);
  t.offset_y = static_cast<double>(top);
  return t;
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

void PreprocessPixelsInto(const Pixels& p, const ModelInfo& info, float* dst, ImageTransform* transform,
                          const std::string& where) {
  const TrimScratch trim;
  const InputGeometry in = ImageInput(info, where);
  const std::string name = where + ": ";
  const int ch = Channels(p.format);
  if (p.width < 1 || p.height < 1) {
    throw Error(name + std::to_string(p.width) + "x" + std::to_string(p.height) + " pixels is empty");
  }
  if (static_cast<int64_t>(p.width) * p.height > kMaxPixels) {
    throw Error(name + std::to_string(p.width) + "x" + std::to_string(p.height) +
                " pixels is over the 100 megapixel limit");
  }
  if (p.data == nullptr) throw Error(name + "no pixel data (null pointer)");
  const size_t packed = static_cast<size_t>(p.width) * ch;
  const size_t stride = p.stride == 0 ? packed : p.stride;
  if (stride < packed) {
    throw Error(name + "row stride " + std::to_string(stride) + " bytes is less than width x channels (" +
                std::to_string(p.width) + " x " + std::to_string(ch) + ")");
  }
  if (stride > static_cast<size_t>(INT32_MAX)) {
    throw Error(name + "row stride " + std::to_string(stride) + " bytes is too large");
  }

  const ImageTransform t = PlaceImage(p.width, p.height, info);
  const int W = in.width, H = in.height;

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
    Scratch(0) = ToModelOrder(p, stride, in.bgr, &sw, &sh);
    src = Scratch(0).data();
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
  if (transform) *transform = t;
}

Tensor PreprocessPixels(const Pixels& p, const ModelInfo& info, ImageTransform* transform, const std::string& where) {
  const InputGeometry in = ImageInput(info, where);
  Tensor out({1, 3, in.height, in.width}, "float32");
  PreprocessPixelsInto(p, info, out.f32(), transform, where);
  return out;
}

Tensor PreprocessImage(const Pixels& pixels, const ModelInfo& info, ImageTransform* transform) {
  return PreprocessPixels(pixels, info, transform, "pixels");
}

void PreprocessImage(const Pixels& pixels, const ModelInfo& info, Tensor* out, ImageTransform* transform) {
  if (out == nullptr) throw Error("pixels: the output tensor is null");
  const InputGeometry in = ImageInput(info, "pixels");
  const std::vector<int64_t> shape{1, 3, in.height, in.width};
  if (out->shape != shape || out->dtype != "float32" || out->bytes.size() != static_cast<size_t>(3) * in.height *
                                                                                  in.width * sizeof(float)) {
    *out = Tensor(shape, "float32");  // once: the same shape next frame
  }
  PreprocessPixelsInto(pixels, info, out->f32(), transform, "pixels");
}

void PreprocessImage(const Pixels& pixels, const ModelInfo& info, float* out, ImageTransform* transform) {
  if (out == nullptr) throw Error("pixels: the output buffer is null");
  PreprocessPixelsInto(pixels, info, out, transform, "pixels");
}

}  // namespace tvm_ncnn
