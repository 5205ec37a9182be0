// ncnn_detect_bench: the native-ncnn reference of benchmarks/bench_detect.py. A detector the way a native ncnn
// user runs it -- the photo decoded by ncnn's simpleocv, letterboxed with ncnn's own resize, border and
// normalize (as ncnn's yolov8 example does), the pnnx graph run by the SAME vendored ncnn with the options the
// tvm-ncnn runtime sets -- followed by the SAME post-processing as model.so: tvm_ncnn::Detect (runtime/src/detect)
// on ncnn's output. The difference to deploy_app is then model.so's own cost, not a different decode or NMS.
//
//   ncnn_detect_bench model.param model.bin photo.jpg --post '{"task": "detect", ...}' [--threads N]
//                     [--repeat N] [--size 640] [--score S] [--iou I] [--in in0] [--out out0]
//
// --post is the model.so's metadata "postprocess" object (bench_detect.py copies it). Prints one JSON object with
// deploy_app --json's names and methods: preprocess_ms (one call, decoding included), p50_ms (over --repeat),
// postprocess_ms (the median of 1 + min(repeat, 20) calls), detections (the count); and the letterbox alone
// (decoding apart, median of 21 calls): letterbox_ms with ncnn's calls, runtime_letterbox_ms with the runtime's
// PreprocessImage, which model.so's deploy_app runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_args.h"
#include "measure.h"  // deploy_app/: the same measurements as deploy_app
#include "native_net.h"

#include "cpu.h"
#include "mat.h"
#include "meta/metadata.h"  // runtime/src: ParseMetadata
#include "net.h"
#include "simpleocv.h"
#include "tvm_ncnn/detect.h"

namespace {

using measure::MsSince;
using measure::Percentile;

// ultralytics' LetterBox with ncnn's calls: scale to fit, round, pad with 114 around the centre, pixels / 255.
ncnn::Mat Letterbox(const cv::Mat& bgr, int size, tvm_ncnn::ImageTransform* where) {
  const double r = std::min(static_cast<double>(size) / bgr.cols, static_cast<double>(size) / bgr.rows);
  const int w = std::min(size, static_cast<int>(std::nearbyint(bgr.cols * r)));
  const int h = std::min(size, static_cast<int>(std::nearbyint(bgr.rows * r)));
  ncnn::Mat resized = ncnn::Mat::from_pixels_resize(bgr.data, ncnn::Mat::PIXEL_BGR2RGB, bgr.cols, bgr.rows, w, h);
  const int left = (size - w) / 2, top = (size - h) / 2;
  ncnn::Mat in;
  ncnn::copy_make_border(resized, in, top, size - h - top, left, size - w - left, ncnn::BORDER_CONSTANT, 114.f);
  const float norm[3] = {1 / 255.f, 1 / 255.f, 1 / 255.f};
  in.substract_mean_normalize(nullptr, norm);
  where->image_width = bgr.cols;
  where->image_height = bgr.rows;
  where->resized_width = w;
  where->resized_height = h;
  where->scale_x = static_cast<double>(w) / bgr.cols;
  where->scale_y = static_cast<double>(h) / bgr.rows;
  where->offset_x = left;
  where->offset_y = top;
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  std::string in_blob = "in0", out_blob = "out0", post;
  int threads = 0, repeat = 10, size = 640;
  tvm_ncnn::DetectOptions opts;
  const bool parsed = bench_args::Parse(argc, argv,
      "ncnn_detect_bench model.param model.bin photo.jpg --post JSON [--threads N] [--repeat N] [--size 640] "
      "[--score S] [--iou I] [--in in0] [--out out0]", 3, {
      {"--threads", [&](const std::string& v) { threads = std::atoi(v.c_str()); }},
      {"--repeat", [&](const std::string& v) { repeat = std::max(1, std::atoi(v.c_str())); }},
      {"--size", [&](const std::string& v) { size = std::atoi(v.c_str()); }},
      {"--score", [&](const std::string& v) { opts.score = std::atof(v.c_str()); }},
      {"--iou", [&](const std::string& v) { opts.iou = std::atof(v.c_str()); }},
      {"--in", [&](const std::string& v) { in_blob = v; }},
      {"--out", [&](const std::string& v) { out_blob = v; }},
      {"--post", [&](const std::string& v) { post = v; }},
  });
  if (!parsed) return 2;
  const std::string param = argv[1], bin = argv[2], photo = argv[3];
  if (threads <= 0) threads = std::max(1, ncnn::get_big_cpu_count());
  try {
    if (post.empty()) throw std::runtime_error("--post is required (the model.so's postprocess object)");
    // What Detect reads of a model: the input's shape and the metadata's postprocess object, parsed as the runtime
    // parses a model.so's metadata at load (into ModelInfo::postprocess).
    const std::string side = std::to_string(size);
    const std::string input =
        "{\"name\": \"in0\", \"shape\": [1, 3, " + side + ", " + side + "], \"dtype\": \"float32\"}";
    tvm_ncnn::ModelInfo info = tvm_ncnn::ParseMetadata(
        "{\"format_version\": " + std::to_string(tvm_ncnn::kMetadataFormatVersion) + ", \"tvm_version\": \"\", " +
            "\"inputs\": [" + input + "], \"outputs\": [], \"postprocess\": " + post + "}",
        "--post");

    auto t0 = std::chrono::steady_clock::now();
    cv::Mat bgr = cv::imread(photo, cv::IMREAD_COLOR);
    if (bgr.empty()) throw std::runtime_error("cannot read " + photo);
    tvm_ncnn::ImageTransform where;
    const ncnn::Mat in = Letterbox(bgr, size, &where);
    const double pre_ms = MsSince(t0);  // one call, decoding included, as deploy_app times it

    // The letterbox alone (decoding apart), median of 21: ncnn's calls above, and the runtime's PreprocessImage
    // (runtime/src/image/preprocess.cc, what model.so's LoadImage runs after decoding) on the same pixels.
    info.preprocess.std = {255.f, 255.f, 255.f};
    info.preprocess.resize = "letterbox";
    tvm_ncnn::Pixels pixels;
    pixels.data = bgr.data;
    pixels.width = bgr.cols;
    pixels.height = bgr.rows;
    pixels.format = tvm_ncnn::PixelFormat::kBGR;
    std::vector<double> ncnn_lb, runtime_lb;
    for (int i = 0; i < 21; ++i) {
      tvm_ncnn::ImageTransform unused;
      t0 = std::chrono::steady_clock::now();
      Letterbox(bgr, size, &unused);
      ncnn_lb.push_back(MsSince(t0));
      t0 = std::chrono::steady_clock::now();
      tvm_ncnn::PreprocessImage(pixels, info, &unused);
      runtime_lb.push_back(MsSince(t0));
    }

    ncnn::Net net;
    native_net::Load(net, param, bin, threads, false);

    auto run = [&](ncnn::Mat* out) { native_net::Run(net, in_blob, in, out_blob, out); };
    ncnn::Mat out;
    run(&out);  // first run: not timed, as deploy_app's first_ms is apart from p50
    std::vector<double> times;
    for (int i = 0; i < repeat; ++i) {
      t0 = std::chrono::steady_clock::now();
      ncnn::Mat o;
      run(&o);
      times.push_back(MsSince(t0));
    }
    // [1, channels, anchors]: ncnn's 2-D blob (h = channels, w = anchors) is dense. The copy into a Tensor stays
    // out of the post-processing time, in native's favour: model.so's Run hands out Tensors already.
    if (out.dims != 2) throw std::runtime_error("expected a 2-D output blob, got " + std::to_string(out.dims) + "-D");
    std::vector<tvm_ncnn::Tensor> outputs{tvm_ncnn::Tensor({1, out.h, out.w}, "float32")};
    std::memcpy(outputs[0].f32(), out.data, sizeof(float) * out.w * out.h);
    std::vector<double> post_times;
    size_t found = 0;
    for (int i = 0; i < 1 + std::min(repeat, 20); ++i) {
      t0 = std::chrono::steady_clock::now();
      found = tvm_ncnn::Detect(outputs, info, where, opts).size();
      post_times.push_back(MsSince(t0));
    }
    std::printf("{\"threads\": %d, \"repeat\": %d, \"preprocess_ms\": %.3f, \"p50_ms\": %.3f, "
                "\"postprocess_ms\": %.3f, \"detections\": %zu, \"letterbox_ms\": %.3f, "
                "\"runtime_letterbox_ms\": %.3f}\n",
                threads, repeat, pre_ms, Percentile(times, 0.5), Percentile(post_times, 0.5), found,
                Percentile(ncnn_lb, 0.5), Percentile(runtime_lb, 0.5));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ncnn_detect_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
