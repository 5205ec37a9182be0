// A camera loop allocates nothing per frame after the first (issue #27): PreprocessImage into an existing tensor,
// Model::Run from a TensorView into existing outputs. Every malloc/new of this process is counted by the hooks
// below (glibc's __libc_* underneath), over 100 frames after two warm-up frames, on a model from
// TVM_NCNN_FRAME_MODEL (tests/reliability/test_frame_api.py exports its classifier and runs this at 1 and 2
// threads, TVM_NCNN_FRAME_THREADS); nothing to do without it.
//   * no allocation at all per frame, for a frame 64x larger too;
//   * the tensors' and outputs' bytes keep their addresses.
// What made it zero (the classifier made 47 a frame; TVM_NCNN_ALLOC_TRACE=0 prints each allocation's stack):
// argument lists, the region call's buffers, ncnn's Extractor and blob pools (steady_pool.h) kept per execution
// context; a model that is one ncnn region run without the Relax VM (metadata direct_region); outputs unpacked by
// the runtime, not by ncnn's extract (which makes a Packing layer per call); our own bilinear resize with per-thread
// tables (image/resize.h); an OpenMP region of one thread run without a libgomp team
// (threads/one_thread_regions.cc); a convolution's padding as a Padding layer of the graph
// (sdk_python/tvm_ncnn/ncnn/window_padding.py).
// Not zero on every model: ncnn's executor allocates the argument lists of each layer with two inputs or outputs
// (a residual add, a Split), and its Pooling and Reshape layers make helpers per call -- mobilenetv2 still makes
// 49 a frame (266 before), as native ncnn does; so does TVM's VM for a model it runs part of.
// Also: DecodeImage / SaveImage / DrawDetections(Image*) round trip, and the zero-copy input path (an aligned
// buffer PreprocessImage writes into, read in place) gives the same outputs as the copying one.
#include <dlfcn.h>
#include <execinfo.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "check.h"
#include "tvm_ncnn/detect.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_count{0}, g_bytes{0}, g_large{0}, g_max{0};
constexpr size_t kLarge = 64 * 1024;  // a frame-sized buffer: the smallest frame here is 48 KB, 160x100 RGB

// TVM_NCNN_ALLOC_TRACE=N prints where each counted allocation of N bytes or more comes from (backtrace_symbols_fd
// does not allocate); unset, none.
size_t TraceFrom() {
  static const size_t from = [] {
    const char* env = std::getenv("TVM_NCNN_ALLOC_TRACE");
    return env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : SIZE_MAX;
  }();
  return from;
}

void Note(size_t n) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  g_count.fetch_add(1, std::memory_order_relaxed);
  g_bytes.fetch_add(static_cast<long>(n), std::memory_order_relaxed);
  long seen = g_max.load(std::memory_order_relaxed);
  while (static_cast<long>(n) > seen && !g_max.compare_exchange_weak(seen, static_cast<long>(n))) {
  }
  if (n >= kLarge) g_large.fetch_add(1, std::memory_order_relaxed);
  if (n >= TraceFrom()) {
    g_counting = false;
    void* frames[24];
    std::fprintf(stderr, "allocation of %zu bytes:\n", n);
    backtrace_symbols_fd(frames, backtrace(frames, 24), 2);
    g_counting = true;
  }
}

void Reset() { g_count = 0, g_bytes = 0, g_large = 0, g_max = 0; }

}  // namespace

extern "C" {
void* malloc(size_t n) { Note(n); return __libc_malloc(n); }
void* calloc(size_t a, size_t b) { Note(a * b); return __libc_calloc(a, b); }
void* realloc(void* p, size_t n) { Note(n); return __libc_realloc(p, n); }
void free(void* p) { __libc_free(p); }
void* memalign(size_t a, size_t n) { Note(n); return __libc_memalign(a, n); }
void* aligned_alloc(size_t a, size_t n) { Note(n); return __libc_memalign(a, n); }
int posix_memalign(void** out, size_t a, size_t n) {
  Note(n);
  *out = __libc_memalign(a, n);
  return *out ? 0 : ENOMEM;
}
}
// operator new goes through malloc in libstdc++, so it is counted there.

int main() {
  const char* path = std::getenv("TVM_NCNN_FRAME_MODEL");
  if (path == nullptr || *path == '\0') {
    std::printf("test_frame_loop: TVM_NCNN_FRAME_MODEL not set, nothing to do "
                "(tests/reliability/test_frame_api.py runs it on an exported model)\n");
    return 0;
  }
  const std::string dir = TempDir();
  tvm_ncnn::Options one_thread;
  const char* threads = std::getenv("TVM_NCNN_FRAME_THREADS");  // to see the count at 2 (no libgomp teams)
  one_thread.threads = threads ? std::atoi(threads) : 1;
  tvm_ncnn::Model model = tvm_ncnn::Model::Load(path, one_thread);
  const tvm_ncnn::ModelInfo& info = model.info();

  // A 160x100 frame with a gradient, through a PNG file and back (DecodeImage: file and memory alike).
  tvm_ncnn::Image made;
  made.width = 160, made.height = 100, made.format = tvm_ncnn::PixelFormat::kRGB;
  made.bytes.resize(160 * 100 * 3);
  for (size_t i = 0; i < made.bytes.size(); ++i) made.bytes[i] = static_cast<uint8_t>((i * 7) % 251);
  tvm_ncnn::SaveImage(made, dir + "/frame.png");
  const tvm_ncnn::Image frame = tvm_ncnn::DecodeImage(dir + "/frame.png");
  CHECK(frame.width == 160 && frame.height == 100 && frame.format == tvm_ncnn::PixelFormat::kBGR);
  CHECK(frame.bytes.size() == made.bytes.size() && frame.bytes[0] == made.bytes[2] && frame.bytes[2] == made.bytes[0]);
  std::ifstream f(dir + "/frame.png", std::ios::binary);
  const std::string png((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const tvm_ncnn::Image from_memory =
      tvm_ncnn::DecodeImage(reinterpret_cast<const uint8_t*>(png.data()), png.size(), "frame 1");
  CHECK(from_memory.bytes == frame.bytes);
  CHECK_ERROR(tvm_ncnn::DecodeImage(reinterpret_cast<const uint8_t*>(png.data()), png.size() / 2, "frame 2"),
              "frame 2", "PNG");
  CHECK_ERROR(tvm_ncnn::DecodeImage(reinterpret_cast<const uint8_t*>("GIF89a"), 6, "frame 3"), "frame 3",
              "not a JPEG, PNG or BMP");

  // The loop: two warm-up frames, then 100 counted; then the same with a frame 64x larger (1280x800).
  tvm_ncnn::Tensor x;
  std::vector<tvm_ncnn::Tensor> y;
  tvm_ncnn::ImageTransform where;
  std::vector<tvm_ncnn::TensorView> in;  // the app's view of x, made again only when x moves or changes shape
  auto loop = [&](const tvm_ncnn::Image& image, const char* what) {
    auto frame_once = [&] {
      tvm_ncnn::PreprocessImage(image.pixels(), info, &x, &where);
      if (in.empty() || in[0].data != x.bytes.data() || in[0].shape != x.shape) in.assign(1, tvm_ncnn::TensorView(x));
      model.Run(in, &y);
    };
    // Two warm-up frames: on mobilenetv2 ncnn's pool allocator grows once more on the second run (one 4.8 MB
    // block), never after.
    frame_once();
    frame_once();
    const void* x_bytes = x.bytes.data();
    const void* y_bytes = y.at(0).bytes.data();
    const std::vector<tvm_ncnn::Tensor> first = y;
    constexpr int kFrames = 100;
    Reset();
    g_counting = true;
    for (int i = 0; i < kFrames; ++i) frame_once();
    g_counting = false;
    std::printf("%d frames of %s: %.1f allocations and %.0f bytes per frame, %ld of them >= %zu bytes, largest %ld\n",
                kFrames, what, static_cast<double>(g_count) / kFrames, static_cast<double>(g_bytes) / kFrames,
                g_large.load(), kLarge, g_max.load());
    CHECK(g_count == 0);
    CHECK(x.bytes.data() == x_bytes && y.at(0).bytes.data() == y_bytes);
    CHECK(y.size() == first.size() && y[0].bytes == first[0].bytes);
  };
  tvm_ncnn::Image big;
  big.width = 1280, big.height = 800, big.format = tvm_ncnn::PixelFormat::kBGR;
  big.bytes.resize(1280 * 800 * 3);
  for (size_t i = 0; i < big.bytes.size(); ++i) big.bytes[i] = static_cast<uint8_t>((i * 13) % 253);
  loop(frame, "160x100");
  loop(big, "1280x800");
  CHECK(model.Run({x})[0].bytes == y[0].bytes);  // the copying Run agrees
  loop(frame, "160x100");                         // x and y as the small frame left them, for what follows

  // Zero copy in: an aligned buffer PreprocessImage writes into, read in place; same outputs.
  const size_t floats = static_cast<size_t>(x.numel());
  float* aligned = static_cast<float*>(std::aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64));
  tvm_ncnn::PreprocessImage(frame.pixels(), info, aligned, nullptr);
  CHECK(std::memcmp(aligned, x.bytes.data(), x.bytes.size()) == 0);
  std::vector<tvm_ncnn::Tensor> z;
  model.Run({tvm_ncnn::TensorView(aligned, x.shape, "float32")}, &z);
  CHECK(z.size() == y.size() && z[0].bytes == y[0].bytes);
  std::free(aligned);
  CHECK_ERROR(model.Run({tvm_ncnn::TensorView(nullptr, x.shape, "float32")}, &z), "no data");
  CHECK_ERROR(model.Run({tvm_ncnn::TensorView(x.bytes.data(), {1, 2}, "float32")}, &z), "expects");

  // Drawing onto pixels in memory changes them (a box of the class colour), and writes a JPEG.
  tvm_ncnn::Image canvas = frame;
  tvm_ncnn::Detection d;
  d.x1 = 10, d.y1 = 20, d.x2 = 90, d.y2 = 80, d.score = 0.9f, d.label = "thing";
  tvm_ncnn::DrawDetections(&canvas, {d});
  CHECK(canvas.bytes != frame.bytes);
  tvm_ncnn::SaveImage(canvas, dir + "/boxes.jpg");
  CHECK(tvm_ncnn::DecodeImage(dir + "/boxes.jpg").width == 160);
  tvm_ncnn::Image gray = frame;
  gray.format = tvm_ncnn::PixelFormat::kGray;
  CHECK_ERROR(tvm_ncnn::DrawDetections(&gray, {d}), "3 channels");
  CHECK_ERROR(tvm_ncnn::SaveImage(canvas, dir + "/boxes.gif"), ".png");
  return Finish("test_frame_loop");
}
