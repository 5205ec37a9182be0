// tvm-ncnn runtime: load a model.so exported by the tvm-ncnn SDK and run it, no Python needed.
//
//   tvm_ncnn::Model model = tvm_ncnn::Model::Load("./model.so");
//   tvm_ncnn::Tensor x = tvm_ncnn::LoadImage("cat.jpg", model.info());   // or PreprocessImage(camera frame)
//   std::vector<tvm_ncnn::Tensor> y = model.Run({x});
//   std::puts(tvm_ncnn::FormatProfile(model.Profile({x}, 50)).c_str());  // where the time goes, call by call
//
// Every failure throws tvm_ncnn::Error with a one-line message naming the file, tensor or version at fault.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tvm_ncnn {

// Threads a model may use: Options::threads, deploy_app --threads and tvm_ncnn.load(threads=) take 1..kMaxThreads.
constexpr int kMaxThreads = 256;

// The message is always one printable line: line breaks become spaces, other control characters and bytes
// that are not UTF-8 (a corrupt file's names end up in messages) are shown as \xNN.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message);
  explicit Error(const char* message) : Error(std::string(message)) {}
};

}  // namespace tvm_ncnn

#include "tvm_ncnn/tensor.h"  // Tensor, TensorView, TensorInfo, CheckInput

namespace tvm_ncnn {

// How an image becomes the model's first input: fit it to the input's H x W as `resize` says, then
// (pixel - mean) / std per channel, pixel values in 0..255, channels in `color` order ("RGB" or "BGR"), laid out
// NCHW. mean and std are always listed R,G,B (as `tvm-ncnn export --mean R,G,B` takes them), whatever `color` is.
// Every resize is bilinear on 8-bit pixels (byte for byte ncnn's resize_bilinear, as OpenCV's INTER_LINEAR: pixel
// centres at +0.5, edges clamped, no antialiasing when shrinking), rounded back to 8 bits before mean/std.
struct Preprocess {
  std::vector<float> mean{0.f, 0.f, 0.f};
  std::vector<float> std{1.f, 1.f, 1.f};
  std::string color = "RGB";
  // "stretch": resize to H x W, whatever the aspect ratio (the default; what model.so files without the field do).
  // "crop": keep the aspect ratio, scale so the image covers floor(H / crop_pct) x floor(W / crop_pct) (for a square
  //     input: the shorter side becomes floor(H / crop_pct)), then cut H x W from the centre -- timm's and
  //     torchvision's evaluation transform (Resize + CenterCrop), e.g. crop_pct 0.875: 224 from 256.
  // "letterbox": keep the aspect ratio, scale the whole image to fit inside H x W, centre it and fill the rest with
  //     the pixel value `pad` (before mean/std) -- YOLO's letterbox (ultralytics LetterBox, auto=False); with
  //     letterbox_topleft the image sits in the top-left corner, padded right and bottom (YOLOX's preproc).
  // For an input whose H and/or W is dynamic (TensorInfo::dynamic) the tensor's H x W follows the image:
  // "letterbox": scale the long side to `size` (ultralytics LetterBox(auto=True)), pad each side only up to the
  //     next multiple of `stride` (640 x 360 -> 640 x 384).
  // "height": the input's static H; W = ceil(H * w / h), at least min_width, at most max_width (squeezed beyond),
  //     padded right up to a multiple of `stride` -- a text recogniser's line (PaddleOCR / rapidocr rec).
  // "limit": keep the aspect ratio so that the short side reaches `size` (limit "min": only up) or the long side
  //     stays within it (limit "max": only down), sides truncated, then each rounded to the nearest multiple of
  //     `stride` (half to even; at least one stride), aspect ratio not kept exactly -- DBNet text detectors
  //     (PaddleOCR / rapidocr det, limit_side_len and limit_type).
  std::string resize = "stretch";
  double crop_pct = 0.875;  // "crop": 0.01..1 (a double: floor(224 / 0.8) must be 280, as Python computes it)
  int pad = 114;            // "letterbox": the border's pixel value, 0..255
  bool letterbox_topleft = false;  // "letterbox": metadata "anchor": "topleft" (default "center")
  int64_t size = 0;         // dynamic "letterbox": the long side's target; "limit": the limit side length
  int64_t stride = 0;       // dynamic "letterbox", "height", "limit": each dynamic side a multiple of it
  int64_t min_width = 0, max_width = 0;  // "height": the tensor width's bounds
  double fill = -1;         // "height": the padding's pixel value (0..255, fractions allowed); -1: 0 in the tensor
  std::string limit = "min";  // "limit": "min" or "max"
};

// How to read a model's outputs (the metadata's "postprocess" object; post-processing is tvm_ncnn/detect.h).
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
  //   "end2end": NMS-free heads exported end to end (YOLOv10, YOLO26): output 0 [1, N, 6], rows x1,y1,x2,y2 in
  //              input pixels, score, class index; no NMS (iou unused).
  std::string layout;
  int classes = 0;             // class count (from the output shapes; end2end: the model's names)
  double score = 0.25;         // default score threshold: a detection needs score > this
  double iou = 0.45;           // default NMS threshold: a box overlapping a better one of its class by more goes
  int max_detections = 300;    // at most this many, best first
  std::vector<int> strides;    // yolox, picodet: the feature map strides, in the order of the anchors/outputs
  int keypoints = 0;           // pose: keypoints per detection
  int keypoint_dims = 0;       // pose: 2 (x, y) or 3 (x, y, visibility)
};

// What model.so says about itself (stored by the SDK at export time).
struct ModelInfo {
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
  Preprocess preprocess;
  std::vector<std::string> labels;  // empty when the model was exported without labels
  std::string target;               // "host", "rpi4", "rpi5", "aarch64"
  std::string triple;               // e.g. "aarch64-linux-gnu"
  std::string sdk_version, tvm_version, ncnn_version;
  int ncnn_regions = 0;             // how many subgraphs run in ncnn
  std::string direct_region;        // the one ncnn region the whole model is, run without the Relax VM ("" when
                                    // the model is more than that)
  std::string precision = "fp32";   // as exported: "fp32", "fp16" (ncnn's fp16 kernels where the CPU has fp16
                                    // arithmetic), "int8"; "fp32" for files exported before it was recorded
  Postprocess postprocess;          // how to read the outputs (task "" when none is recorded)
  std::string json;                 // the metadata document exactly as stored in model.so

  // The position of the input / output called `name` (Model::Run's order); throws Error naming the ones there are.
  size_t InputIndex(const std::string& name) const;
  size_t OutputIndex(const std::string& name) const;
};

// Where the time of a run goes (Model::Profile). One row per function the model's Relax VM calls, timed around
// each call the VM makes (its instrument hook), each call's own time only (a call inside another is not counted
// twice), averaged over the profiled runs.
struct ProfileRow {
  std::string name;     // the ncnn region's symbol, or the function's name in model.so (e.g. "fused_erf")
  std::string kind;     // "ncnn region"; "tvm": code TVM compiled (a TIR function, or a packed function TVM's
                        // lowering calls); "vm": the Relax VM's own builtins (allocation, shape checks);
                        // "other": the rest of the run, outside any call (the VM's dispatch, input/output copies)
  double calls = 0;     // calls per run
  double ms = 0;        // milliseconds per run
  double share = 0;     // of the run's wall time, 0..1
  int ncnn_layers = -1; // an ncnn region's layer count (its graph's, as ncnn loads it); -1 for other kinds
};

// Model::Profile, deploy_app --profile and tvm_ncnn's profile() take 1..kMaxProfileRuns runs.
constexpr int kMaxProfileRuns = 100000;

struct ProfileReport {
  int runs = 0;                 // profiled runs (after one warm-up run, not counted)
  double run_ms = 0;            // wall time per run, as Model::Run takes it, with the hook in place
  std::vector<ProfileRow> rows; // slowest first; ms add up to run_ms and shares to 1 (the "other" row is the rest)
  int threads = 0;              // the model's threads and thread policy (Model::thread_policy), for the header
  std::string thread_policy;

  double KindShare(const std::string& kind) const;  // the share of every row of that kind together
};

// The report as a table, one row per line: name, kind, calls, ms, share %; then the share of each kind.
// What deploy_app --profile and tvm_ncnn.load(...).profile(x) print.
std::string FormatProfile(const ProfileReport& report);

// The precision names a model.so may record (ModelInfo::precision): "fp32", "fp16", "int8"; and those of them
// Options::precision (and deploy_app --precision) may switch any model to: "fp32", "fp16" (the others run only as
// exported).
std::vector<std::string> Precisions();
std::vector<std::string> LoadPrecisions();

struct Options {
  int threads = 0;     // 0: the big cores found on this machine (DetectThreads); at most kMaxThreads
  // "": the precision model.so was exported with (ModelInfo::precision); "fp32" or "fp16" overrides it for the
  // layers that are not int8. fp16 runs only where the CPU has fp16 arithmetic (CpuHasFp16Arithmetic), fp32
  // elsewhere: Model::precision() says which ran.
  std::string precision;
  bool fp16 = false;   // older spelling of precision = "fp16" (used when precision is "")
  // Path of an Ed25519 public key (PEM: tvm-ncnn keygen's KEY.pub). Given, Load refuses before dlopen a model.so
  // that this key did not sign (tvm-ncnn export --sign KEY); "": signatures are not checked (README "Trust").
  std::string trust;
};

// A loaded model. Load() returns a valid one; a default-constructed or moved-from Model is empty (valid() false)
// and every call on it but valid(), assignment and destruction throws Error saying so.
//
// Concurrency: Run and Profile may be called from any number of threads at once and run in parallel. The model's
// weights are loaded once (one ncnn::Net per region, TVM's constants) and shared; each concurrent call runs on an
// execution context of its own -- a Relax VM instance and input buffers, as ncnn's Extractor is to its Net --
// taken from the model's pool and returned after the call. The pool grows to the number of calls that ever ran
// at the same moment and keeps them (each costs the VM's state and one set of input and intermediate buffers,
// not the weights). Give each caller `threads` / N threads (Options::threads) for N callers on N cores.
class Model {
 public:
  // Loads model.so and prepares it to run: builds one ncnn::Net per offloaded region and the Relax VM.
  static Model Load(const std::string& path, const Options& options = Options());

  Model() noexcept;  // empty: assign Model::Load(...) before using it
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  bool valid() const { return impl_ != nullptr; }
  const ModelInfo& info() const;
  int threads() const;  // the thread count in use (never 0)
  // What runs: "fp32", "fp16" (ncnn's fp16 storage and arithmetic), "int8" (int8 layers, the rest fp32) or
  // "int8+fp16" (int8 layers, the rest fp16). Differs from info().precision when Options overrode it or when
  // the CPU has no fp16 arithmetic (then fp16 is fp32).
  const std::string& precision() const;
  bool fp16() const;    // precision() runs ncnn's fp16 kernels
  // "ed25519:<16 hex>", the fingerprint of Options::trust when it verified the file's signature; "" without trust.
  const std::string& signer() const;
  // The thread policy in effect, in words: "one pool: TVM ops on ncnn's OpenMP threads, libgomp's default wait
  // (native ncnn's)" unless TVM_NCNN_TVM_POOL=tvm or OMP_WAIT_POLICY / GOMP_SPINCOUNT say otherwise (README
  // "Threads").
  const std::string& thread_policy() const;

  // Runs the model once. Inputs must match info().inputs in count, shape and dtype. Reads them as the overload
  // below does and returns newly allocated outputs.
  std::vector<Tensor> Run(const std::vector<Tensor>& inputs);

  // The same run, for a loop that allocates nothing per call:
  //  * inputs are read in place when their data is 64-byte aligned (what TVM's compiled code assumes of every
  //    tensor; std::aligned_alloc(64, ...) memory is, a Tensor's std::vector bytes usually are not); otherwise
  //    each is copied once into the context's input buffer (allocated at load, nothing allocated per call). Where
  //    ncnn computes in fp16 (a Pi 5), the ncnn region converts its input to fp16 as it reads it, as ncnn would;
  //  * outputs are written into *outputs: tensors already of the right shape and dtype are filled in place (their
  //    bytes keep their address); others are reshaped once. A model that is one ncnn region (info().direct_region)
  //    runs it without the Relax VM and ncnn's results are written straight into them; otherwise they are copied
  //    once out of the VM's pooled memory, which the next call reuses.
  void Run(const std::vector<TensorView>& inputs, std::vector<Tensor>* outputs);

  // Runs the model once to warm up, then `runs` times (1..kMaxProfileRuns) timing every call its Relax VM
  // makes: each ncnn region and each TVM function. Costs under a microsecond per call while it runs; Run is not
  // slowed afterwards (the hook is removed). Throws as Run does.
  ProfileReport Profile(const std::vector<Tensor>& inputs, int runs = 10);

  // How many execution contexts the model holds (the most calls that ran at the same moment; at least 1).
  int contexts() const;

  struct Impl;     // opaque: the runtime's own (runtime/src/model_impl.h)
  struct Context;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  Impl& impl() const;  // throws Error on an empty Model
  std::unique_ptr<Impl> impl_;
};

// The number of big (performance) cores of this machine, at least 1 and at most kMaxThreads.
int DetectThreads();

// Whether this CPU has fp16 arithmetic (armv8.2 asimdhp: Cortex-A76 / Pi 5 yes, Cortex-A72 / Pi 4 and x86 no),
// the condition under which ncnn runs its fp16 kernels and a model's "fp16" precision is fp16.
bool CpuHasFp16Arithmetic();

// Threads (README "Threads"): a loaded model runs TVM's parallel loops on ncnn's OpenMP threads (one pool,
// Model::thread_policy), which need no variable: this sets TVM_NUM_THREADS (`threads`, 0: DetectThreads()) for a
// TVM pool something else may start, unless set already; nothing with TVM_NCNN_WAIT_POLICY=inherit. With
// TVM_NCNN_TVM_POOL=tvm (TVM's own pool beside libgomp's, as before) it also sets short spins for both,
// TVM_THREAD_POOL_SPIN_COUNT and GOMP_SPINCOUNT (not when OMP_WAIT_POLICY is set); libgomp reads GOMP_SPINCOUNT
// once, when it is loaded (before main), so then it executes the program again (/proc/self/exe with argv) for
// it to take effect; with argv == nullptr it only sets the variables (for the processes this one starts).
// Call it first thing in main.
void CoordinateThreads(int threads, char** argv);

// One class of a classifier's output: its index in the (flattened) output, its label ("" without labels) and
// its score.
struct ScoredClass {
  int64_t index;
  std::string label;
  double score;
};

// The k best classes of a model output, best first (NaN scores last), as deploy_app and `tvm-ncnn run` print
// them. kind says what the scores are: "probabilities" (the output already is a probability vector),
// "softmax" (the softmax of a float output that is not one) or "values" (a non-float output, as it is).
// Labels are used when there is one per element of the output.
struct TopK {
  std::string kind;
  std::string description;  // kind in words, for people
  std::vector<ScoredClass> classes;
};
// k must be at least 1 (Error otherwise); k above the element count gives every element.
TopK ScoreTopK(const Tensor& output, const std::vector<std::string>& labels, int k);

// Where the image landed in the model input, so that what a model finds there (a detector's boxes, keypoints) can
// be mapped back to the image. Coordinates are continuous, pixel i covering [i, i+1):
//   input x = image x * scale_x + offset_x        image x = (input x - offset_x) / scale_x     (y alike)
// stretch: offsets 0; letterbox: the offsets are the left and top padding (>= 0); crop: minus the left and top of
// the cut (<= 0).
struct ImageTransform {
  int image_width = 0, image_height = 0;      // the image as given
  int resized_width = 0, resized_height = 0;  // after the resize, before the crop or the padding
  double scale_x = 1, scale_y = 1;            // resized / image size
  double offset_x = 0, offset_y = 0;
  int input_width = 0, input_height = 0;      // the tensor's W x H this image got (varies for a dynamic input)

  double ToImageX(double input_x) const { return (input_x - offset_x) / scale_x; }
  double ToImageY(double input_y) const { return (input_y - offset_y) / scale_y; }
};

// The transform an image of width x height gets from info's preprocess and input size (PreprocessImage uses it);
// its input_width x input_height is the tensor's size, which for a dynamic input depends on the image.
ImageTransform PlaceImage(int width, int height, const ModelInfo& info);

// 8-bit pixels in memory, e.g. a camera frame. Channel order per pixel: kRGB R,G,B; kBGR B,G,R (OpenCV, and
// picamera2's "RGB888"); kRGBA / kBGRA with a fourth byte that is ignored (picamera2's "XRGB8888" is kBGRA);
// kGray one byte, replicated to three channels.
enum class PixelFormat { kRGB, kBGR, kRGBA, kBGRA, kGray };

struct Pixels {
  const uint8_t* data = nullptr;  // the top-left pixel; not owned, read only during the call
  int width = 0, height = 0;
  PixelFormat format = PixelFormat::kRGB;
  size_t stride = 0;              // bytes from one row to the next (>= width * channels); 0: rows are packed
};

// Preprocesses pixels as `info` says (Preprocess above) into a 1x3xHxW float32 tensor (H x W from
// info.inputs[0], or from the image for a dynamic input: ImageTransform::input_width/height): the one
// implementation LoadImage, deploy_app and Python's load_image use, so the same pixels give the same tensor, bit
// for bit, in whatever format and stride they come. Fills *transform when given.
Tensor PreprocessImage(const Pixels& pixels, const ModelInfo& info, ImageTransform* transform = nullptr);

// The same into an existing tensor, for a camera loop: when *out already is 1x3xHxW float32 its bytes are reused
// (same address), else it is reshaped once. The 8-bit canvases the resize works on are kept per thread, so a
// loop of same-sized frames allocates no frame-sized buffer after the first.
void PreprocessImage(const Pixels& pixels, const ModelInfo& info, Tensor* out, ImageTransform* transform = nullptr);
// The same into caller memory of 3 x H x W floats (e.g. std::aligned_alloc(64, ...), which Model::Run then reads
// in place through a TensorView: no copy of the input at all). For a dynamic input, H x W is PlaceImage's
// input_height x input_width for the frame's size.
void PreprocessImage(const Pixels& pixels, const ModelInfo& info, float* out, ImageTransform* transform = nullptr);

// Decoded pixels that own their memory (DecodeImage), e.g. to preprocess and to draw on.
struct Image {
  int width = 0, height = 0;
  PixelFormat format = PixelFormat::kBGR;  // DecodeImage gives kBGR, the decoder's order (no swap pass)
  std::vector<uint8_t> bytes;              // rows packed: width * channels bytes each
  Pixels pixels() const { return Pixels{bytes.data(), width, height, format, 0}; }
};

// Decodes a JPEG/PNG/BMP file, or such bytes in memory, into 3-channel pixels (B,G,R) -- the decoder LoadImage and deploy_app
// use, with the same refusals (README "Errors and limits"): grayscale and RGBA become 3 channels, over 100 megapixels
// is refused before decoding. `what` names the bytes in messages ("frame 12").
Image DecodeImage(const std::string& path);
Image DecodeImage(const uint8_t* data, size_t size, const std::string& what = "image in memory");

// Decodes a JPEG/PNG/BMP image and preprocesses it with PreprocessImage. Grayscale and RGBA images become 3
// channels (alpha is dropped); images over 100 megapixels are refused before decoding.
Tensor LoadImage(const std::string& path, const ModelInfo& info, ImageTransform* transform = nullptr);

// .npy files (little-endian, C order; float32, float64, int32, int64, uint8).
Tensor LoadNpy(const std::string& path);
void SaveNpy(const std::string& path, const Tensor& tensor);

// Versions this runtime was built with.
const char* SdkVersion();
const char* TvmVersion();
const char* NcnnVersion();

}  // namespace tvm_ncnn
