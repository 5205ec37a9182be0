// Where an image lands in the model input (PlaceImage) and the model-side checks (ImageInput): the arithmetic of
// every resize mode, one place. A static input's H x W is the metadata's; a dynamic input's follows the image by
// its mode's rule (runtime.h Preprocess, runtime/FORMAT.md "preprocess"), each rule that of the code the model was
// trained with: ultralytics' LetterBox(auto=True), PaddleOCR's recogniser line and DBNet detector resizes.
#include "image/place.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "internal.h"

namespace tvm_ncnn {
namespace {

// Python's round(): half to even. torchvision's CenterCrop, ultralytics' LetterBox and PaddleOCR's DB resize use it.
int64_t RoundHalfEven(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

std::string Num(int64_t v) { return std::to_string(v); }

std::string Rule(const DynamicDim& d) {
  return (d.multiple > 1 ? "multiples of " + Num(d.multiple) + " " : "") + "from " + Num(d.min) + " to " + Num(d.max);
}

// The checks of a dynamic input against its resize mode: which sides may be dynamic, and the stride.
void CheckDynamic(const TensorInfo& in, const Preprocess& pp, ResizeMode mode, const std::string& where,
                  image::InputGeometry* g) {
  const bool dh = g->dynamic_h != nullptr, dw = g->dynamic_w != nullptr;
  // Messages are built only when thrown: these checks run on every frame.
  auto name = [&] { return where + ": "; };
  auto input = [&] { return "model input '" + in.name + "' " + ShapeString(in.shape); };
  const bool fits = mode == ResizeMode::kHeight ? !dh && dw
                    : mode == ResizeMode::kLimit ? dh && dw
                    : mode == ResizeMode::kLetterbox ? dh == dw
                                                     : !dh && !dw;
  if (!fits) {
    const char* wants = mode == ResizeMode::kHeight      ? "a static H and a dynamic W"
                        : mode == ResizeMode::kLimit     ? "a dynamic H and W"
                        : mode == ResizeMode::kLetterbox ? "a static or a dynamic H and W, not one of each"
                                                         : "a static H x W (letterbox, height or limit fit a "
                                                           "dynamic one)";
    throw Error(name() + input() + ": resize " + pp.resize + " needs " + wants);
  }
  if (!dh && !dw) return;
  if ((mode != ResizeMode::kHeight) && pp.size < 1) {
    throw Error(name() + input() + " is dynamic: resize " + pp.resize + " needs preprocess.size");
  }
  const int64_t multiple = std::lcm(dh ? g->dynamic_h->multiple : 1, g->dynamic_w->multiple);
  g->stride = pp.stride > 0 ? pp.stride : multiple;
  if (g->stride % multiple != 0) {
    throw Error(name() + "preprocess stride " + Num(g->stride) + " is not a multiple of " + Num(multiple) + ", which " +
                input() + " needs");
  }
  // Every size the rule can give must be one the graph takes: then no image is refused for its shape (but a
  // limit:min of a large image, which keeps its size: PlaceImage checks each).
  for (const DynamicDim* d : {g->dynamic_h, g->dynamic_w}) {
    if (d == nullptr || mode == ResizeMode::kHeight) continue;
    auto side = [&] { return input() + " " + (d->name.empty() ? "axis " + Num(d->axis) : d->name); };
    if (g->stride < d->min) {
      throw Error(name() + "preprocess stride " + Num(g->stride) + " is below the smallest size " + side() + " takes");
    }
    if (pp.size > d->max) {
      throw Error(name() + "preprocess size " + Num(pp.size) + " is over the largest size " + side() + " takes (" +
                  Num(d->max) + ")");
    }
  }
  if (mode != ResizeMode::kHeight && pp.size % g->stride != 0) {
    throw Error(name() + "preprocess size " + Num(pp.size) + " is not a multiple of the stride " + Num(g->stride));
  }
  if (mode == ResizeMode::kHeight) {
    const DynamicDim& d = *g->dynamic_w;
    g->min_width = pp.min_width > 0 ? pp.min_width : d.min;
    g->max_width = pp.max_width > 0 ? pp.max_width : d.max / g->stride * g->stride;
    if (g->min_width < d.min || g->max_width > d.max || g->max_width % g->stride != 0 ||
        g->max_width < g->min_width) {
      throw Error(name() + "preprocess width " + Num(g->min_width) + ".." + Num(g->max_width) + " by " +
                  Num(g->stride) + " does not fit " + input() + " W (" + Rule(d) +
                  "): min_width >= its min, max_width <= its max and a multiple of the stride");
    }
  }
}

}  // namespace

namespace image {

InputGeometry ImageInput(const ModelInfo& info, const std::string& where) {
  // Messages are built only when thrown: this runs on every frame.
  auto name = [&] { return where + ": "; };
  if (info.inputs.empty()) throw Error(name() + "the model has no inputs");
  const TensorInfo& in = info.inputs[0];
  auto side = [&](int axis) { return in.shape[axis] >= 1 || (in.shape[axis] == -1 && in.Dynamic(axis)); };
  if (in.shape.size() != 4 || in.shape[0] != 1 || in.shape[1] != 3 || !side(2) || !side(3) || in.dtype != "float32") {
    throw Error(name() + "model input '" + in.name + "' is " + ShapeString(in.shape) + " " + in.dtype +
                "; an image needs a [1,3,H,W] float32 input (pass a .npy instead)");
  }
  const Preprocess& pp = info.preprocess;
  if (pp.mean.size() != 3 || pp.std.size() != 3) {
    throw Error(name() + "model preprocess needs 3 mean and 3 std values");
  }
  if (pp.color != "RGB" && pp.color != "BGR") {
    throw Error(name() + "model preprocess color '" + pp.color + "' is not RGB or BGR");
  }
  const ResizeRow* mode = FindName(kResizeModes, pp.resize);
  if (mode == nullptr) {
    throw Error(name() + "model preprocess resize '" + pp.resize + "' is not " +
                JoinNames(Names(kResizeModes), ", ", " or "));
  }
  if (mode->id == ResizeMode::kCrop && !(pp.crop_pct >= kMinCropPct && pp.crop_pct <= 1)) {
    throw Error(name() + "model preprocess crop_pct " + std::to_string(pp.crop_pct) + " is not in 0.01..1");
  }
  if (mode->id == ResizeMode::kLetterbox && (pp.pad < 0 || pp.pad > 255)) {
    throw Error(name() + "model preprocess pad " + std::to_string(pp.pad) + " is not a pixel value 0..255");
  }
  if (in.shape[2] >= 1 && in.shape[3] >= 1 && in.shape[2] * in.shape[3] > kMaxPixels) {
    throw Error(name() + "model input '" + in.name + "' is " + ShapeString(in.shape) + ": over 100 megapixels");
  }
  InputGeometry g;
  g.height = static_cast<int>(in.shape[2]);
  g.width = static_cast<int>(in.shape[3]);
  g.dynamic_h = g.height == -1 ? in.Dynamic(2) : nullptr;
  g.dynamic_w = g.width == -1 ? in.Dynamic(3) : nullptr;
  g.resize = mode->id;
  CheckDynamic(in, pp, mode->id, where, &g);
  // mean/std are listed R,G,B; input channel c holds R,G,B or B,G,R as `color` says.
  g.bgr = pp.color == "BGR";
  for (int c = 0; c < 3; ++c) {
    const int rgb = g.bgr ? 2 - c : c;
    if (pp.std[rgb] == 0.f) throw Error(name() + "model preprocess std has a zero");
    g.mean[c] = pp.mean[rgb];
    g.norm[c] = 1.f / pp.std[rgb];
  }
  return g;
}

}  // namespace image

void CheckImageInput(const ModelInfo& info, const std::string& where) { image::ImageInput(info, where); }

ImageTransform PlaceImage(int width, int height, const ModelInfo& info) {
  using image::kMaxPixels;
  const image::InputGeometry in = image::ImageInput(info, "image");
  auto size = [&] { return std::to_string(width) + "x" + std::to_string(height); };  // for messages
  if (width < 1 || height < 1) throw Error("image: " + size() + " pixels is empty");
  if (static_cast<int64_t>(width) * height > kMaxPixels) {
    throw Error("image: " + size() + " pixels is over the 100 megapixel limit");
  }
  const Preprocess& pp = info.preprocess;
  const int64_t w = width, h = height, s = in.stride;
  int64_t W = in.width, H = in.height;  // the tensor's size: set below for a dynamic side
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
    // right and bottom, and boxes mapped back by dividing by r itself (below). Dynamic (auto=True): the target is
    // size x size and each side is padded only up to its next multiple of the stride.
    const int64_t th = in.dynamic_h ? pp.size : H, tw = in.dynamic_w ? pp.size : W;
    r = std::min(static_cast<double>(th) / h, static_cast<double>(tw) / w);
    rw = std::clamp<int64_t>(pp.letterbox_topleft ? static_cast<int64_t>(w * r) : RoundHalfEven(w * r), 1, tw);
    rh = std::clamp<int64_t>(pp.letterbox_topleft ? static_cast<int64_t>(h * r) : RoundHalfEven(h * r), 1, th);
    if (in.dynamic_w) W = rw + (tw - rw) % s;  // ultralytics: np.mod(new_shape - new_unpad, stride)
    if (in.dynamic_h) H = rh + (th - rh) % s;
    if (!pp.letterbox_topleft) {
      left = (W - rw) / 2;
      top = (H - rh) / 2;
    }
  } else if (in.resize == ResizeMode::kHeight) {
    // PaddleOCR's recogniser line (rapidocr resize_norm_img, one line): width int(H * max(min ratio, w / h)),
    // the image ceil(H * w / h) wide within it, zeros (fill) to the right. Here the width also rounds up to the
    // stride and stops at max_width, where a longer line is squeezed.
    const double wide = H * (static_cast<double>(w) / h);
    W = std::max<int64_t>(in.min_width, static_cast<int64_t>(wide));
    W = std::min((W + s - 1) / s * s, in.max_width);
    rw = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(wide)), 1, W);
  } else if (in.resize == ResizeMode::kLimit) {
    // PaddleOCR's DB detector resize (rapidocr DetPreProcess): one ratio from the limiting side, sides truncated,
    // then each rounded to the nearest multiple of the stride (half to even) -- at least one stride (PaddleOCR
    // gives up on an image that rounds to 0).
    double ratio = 1;
    if (pp.limit == "max" ? std::max(h, w) > pp.size : std::min(h, w) < pp.size) {
      const bool by_h = pp.limit == "max" ? h > w : h < w;
      ratio = static_cast<double>(pp.size) / (by_h ? h : w);
    }
    const int64_t th = static_cast<int64_t>(h * ratio), tw = static_cast<int64_t>(w * ratio);
    H = rh = std::max<int64_t>(s, RoundHalfEven(static_cast<double>(th) / s) * s);
    W = rw = std::max<int64_t>(s, RoundHalfEven(static_cast<double>(tw) / s) * s);
  }
  if (rw > kMaxPixels || rh > kMaxPixels || rw * rh > kMaxPixels || W * H > kMaxPixels) {
    throw Error("image: resizing " + size() + " to " + std::to_string(rw) + "x" + std::to_string(rh) +
                " is over the 100 megapixel limit");
  }
  for (const DynamicDim* d : {in.dynamic_h, in.dynamic_w}) {
    const int64_t got = d == in.dynamic_h ? H : W;
    if (d != nullptr && !d->Accepts(got)) {
      throw Error("image: " + size() + " gives the input " + std::to_string(W) + "x" + std::to_string(H) +
                  " by resize " + pp.resize + ", but its " + (d->name.empty() ? "axis " + Num(d->axis) : d->name) +
                  " takes " + Rule(*d));
    }
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
  t.input_width = static_cast<int>(W);
  t.input_height = static_cast<int>(H);
  return t;
}

}  // namespace tvm_ncnn
