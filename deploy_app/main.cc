// deploy_app: run a tvm-ncnn model.so on one image or .npy tensor, print the top-k and the latency.
//
// Every failure is one line "deploy_app: error: <message>" on stderr; exit code 2 for usage errors, 1 otherwise.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "args.h"
#include "detections.h"
#include "json.h"
#include "measure.h"
#include "outputs.h"
#include "tvm_ncnn/detect.h"
#include "tvm_ncnn/runtime.h"

namespace {

using deploy_app::Args;
using deploy_app::JsonNumber;
using deploy_app::JsonString;
using deploy_app::LowerExtension;
using deploy_app::ParseArgs;
using deploy_app::Usage;
using deploy_app::UsageError;
using measure::CpuMs;
using measure::CurrentRssMb;
using measure::MsSince;
using measure::PeakRssMb;
using measure::Percentile;

// Why the header's precision is what it is: the export's choice, a --precision override, or a CPU without fp16
// arithmetic (where fp16 runs as fp32).
std::string PrecisionNote(const tvm_ncnn::Model& model, const std::string& asked) {
  const std::string& exported = model.info().precision;
  std::string note = asked.empty() || asked == exported ? "as exported" : "exported " + exported + ", asked " + asked;
  const bool wanted_fp16 = asked == "fp16" || ((asked.empty() || asked == "int8") && exported != "fp32");
  if (wanted_fp16 && !model.fp16()) note += "; this CPU has no fp16 arithmetic";
  return note;
}

bool IsImagePath(const std::string& path) {
  const std::string ext = LowerExtension(path);
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// ---- JSON output (json.h for strings and numbers)

std::string JsonShape(const std::vector<int64_t>& shape) {
  return tvm_ncnn::ShapeString(shape);  // "[1,3,224,224]" is valid JSON
}

// [{"name", "kind", "calls", "ms", "share", "ncnn_layers" (regions only)}, ...], slowest first.
// The resize as export's --resize (and --size / --stride / --min-width / --max-width) spell it.
std::string ResizeText(const tvm_ncnn::Preprocess& pp) {
  char text[160];
  const auto n = [](int64_t v) { return static_cast<long long>(v); };
  if (pp.resize == "crop") {
    std::snprintf(text, sizeof(text), "crop:%g", pp.crop_pct);
  } else if (pp.resize == "letterbox") {
    std::snprintf(text, sizeof(text), "letterbox:%d%s", pp.pad, pp.letterbox_topleft ? ":topleft" : "");
    if (pp.size > 0) {
      const std::string base = text;
      std::snprintf(text, sizeof(text), "%s, size %lld, stride %lld", base.c_str(), n(pp.size), n(pp.stride));
    }
  } else if (pp.resize == "height") {
    char pad[32] = "";
    if (pp.fill >= 0) std::snprintf(pad, sizeof(pad), ":%g", pp.fill);
    std::snprintf(text, sizeof(text), "height%s, width %lld..%lld, stride %lld", pad, n(pp.min_width),
                  n(pp.max_width), n(pp.stride));
  } else if (pp.resize == "limit") {
    std::snprintf(text, sizeof(text), "limit:%s, size %lld, stride %lld", pp.limit.c_str(), n(pp.size),
                  n(pp.stride));
  } else {
    std::snprintf(text, sizeof(text), "%s", pp.resize.c_str());
  }
  return text;
}

std::string JsonProfileRows(const tvm_ncnn::ProfileReport& profile) {
  std::string j = "[";
  for (size_t i = 0; i < profile.rows.size(); ++i) {
    const tvm_ncnn::ProfileRow& row = profile.rows[i];
    j += std::string(i ? ", " : "") + "{\"name\": " + JsonString(row.name) + ", \"kind\": " + JsonString(row.kind) +
         ", \"calls\": " + JsonNumber(row.calls) + ", \"ms\": " + JsonNumber(row.ms, "%.4f") +
         ", \"share\": " + JsonNumber(row.share, "%.4f");
    if (row.ncnn_layers >= 0) j += ", \"ncnn_layers\": " + std::to_string(row.ncnn_layers);
    j += "}";
  }
  return j + "]";
}

std::string OneLine(std::string s) {
  // ffi errors that slip through carry a traceback; the message is the last line.
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  size_t nl = s.find_last_of('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

int Run(const Args& a) {
  const bool image = IsImagePath(a.input);
  if (!image && LowerExtension(a.input) != ".npy") {
    throw UsageError{"INPUT '" + a.input + "' must be a .jpg/.jpeg/.png/.bmp image or a .npy tensor"};
  }

  if (!a.output.empty()) {  // fail before the model runs, not after
    const size_t slash = a.output.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : a.output.substr(0, slash);
    if (access(dir.c_str(), W_OK) != 0) {
      throw tvm_ncnn::Error("--output '" + a.output + "': cannot write to '" + dir + "' (" + std::strerror(errno) +
                            ")");
    }
  }

  tvm_ncnn::Options options;
  options.threads = a.threads;
  options.precision = a.precision;
  options.trust = a.trust;
  auto t0 = std::chrono::steady_clock::now();
  tvm_ncnn::Model model = tvm_ncnn::Model::Load(a.model, options);
  const double load_ms = MsSince(t0);
  const tvm_ncnn::ModelInfo& info = model.info();

  if (info.inputs.size() != 1) {
    throw tvm_ncnn::Error("model '" + a.model + "' has " + std::to_string(info.inputs.size()) +
                          " inputs; deploy_app feeds exactly one (use the C++ or Python API)");
  }
  const tvm_ncnn::TensorInfo& want = info.inputs[0];
  if (!a.output.empty()) deploy_app::CheckOutputFile(a.output, info);  // .npy for several outputs: before the runs
  // Detectors: decode + NMS + mapping back through the letterbox (tvm_ncnn/detect.h), timed apart from inference.
  const tvm_ncnn::Postprocess& post = info.postprocess;
  const std::vector<std::string> detector_tasks = tvm_ncnn::DetectorTasks();
  const bool detector = std::find(detector_tasks.begin(), detector_tasks.end(), post.task) != detector_tasks.end();
  if (!detector && (a.score >= 0 || a.iou >= 0 || !a.draw.empty())) {
    throw UsageError{"--score, --iou and --draw are for detectors; model.so records task '" + post.task +
                     "' (export with --task " + deploy_app::JoinNames(detector_tasks, "|", "|") + ")"};
  }
  if (!a.draw.empty() && !image) throw UsageError{"--draw needs an image INPUT, not a .npy"};
  tvm_ncnn::ImageTransform where;  // a .npy is the input itself: image = input pixels (set below)
  double pre_ms = std::nan("");
  tvm_ncnn::Tensor x;
  if (image) {
    const auto tp = std::chrono::steady_clock::now();
    x = tvm_ncnn::LoadImage(a.input, info, &where);
    pre_ms = MsSince(tp);  // decoding the file included
  } else {
    x = tvm_ncnn::LoadNpy(a.input);
    try {
      tvm_ncnn::CheckInput(want, x);  // before the runs, naming the file
    } catch (const tvm_ncnn::Error& e) {
      throw tvm_ncnn::Error(".npy file '" + a.input + "': " + e.what());
    }
    if (x.shape.size() == 4) {  // the tensor's own H x W (a dynamic input's is the file's)
      where.image_width = where.resized_width = where.input_width = static_cast<int>(x.shape[3]);
      where.image_height = where.resized_height = where.input_height = static_cast<int>(x.shape[2]);
    }
  }

  const std::vector<tvm_ncnn::Tensor> inputs{std::move(x)};  // built once: the timed runs copy nothing extra
  const tvm_ncnn::Tensor& in = inputs[0];
  t0 = std::chrono::steady_clock::now();
  std::vector<tvm_ncnn::Tensor> outputs = model.Run(inputs);
  const double first_ms = MsSince(t0);
  const double first_rss_mb = CurrentRssMb();
  std::vector<double> times;
  times.reserve(static_cast<size_t>(a.repeat));
  const double cpu0 = CpuMs();
  double warm_rss_mb = -1;  // after 10 timed runs: allocators have settled, later growth would be a leak
  for (int i = 0; i < a.repeat; ++i) {
    t0 = std::chrono::steady_clock::now();
    model.Run(inputs);
    times.push_back(MsSince(t0));
    if (i + 1 == std::min(10, a.repeat)) warm_rss_mb = CurrentRssMb();
  }
  // CPU time per steady run, all threads: above the latency x 1 when threads work or spin in parallel. With
  // --repeat 0 there are no steady runs: these are NaN, printed as null in JSON.
  const bool steady = a.repeat > 0;
  const double none = std::nan("");
  const double cpu_ms = steady ? (CpuMs() - cpu0) / a.repeat : none;
  const double p50 = steady ? Percentile(times, 0.5) : none;
  const double p90 = steady ? Percentile(times, 0.9) : none;
  if (!steady) warm_rss_mb = none;
  // Memory: the peak (load included), what stays resident after the first run, after 10 runs and after all
  // runs (a leak shows as steady > warm with many --repeat).
  const double steady_rss_mb = CurrentRssMb(), peak_rss_mb = PeakRssMb();
  // After the plain runs, so that the hook's few microseconds per call stay out of the latency figures.
  tvm_ncnn::ProfileReport profile;
  if (a.profile) profile = model.Profile(inputs, a.repeat);

  if (outputs.empty()) throw tvm_ncnn::Error("model '" + a.model + "' returned no outputs");
  const tvm_ncnn::Tensor& y = outputs[0];
  const std::string saved = a.output.empty() ? "" : deploy_app::SaveOutputs(a.output, info, outputs);
  std::vector<tvm_ncnn::Detection> found;
  double post_ms = std::nan("");
  if (detector) {
    tvm_ncnn::DetectOptions opts;
    opts.score = a.score;
    opts.iou = a.iou;
    std::vector<double> post_times;  // the median of a few calls: one call is too short to time alone
    for (int i = 0; i < 1 + std::min(a.repeat, 20); ++i) {
      const auto tp = std::chrono::steady_clock::now();
      found = tvm_ncnn::Detect(outputs, info, where, opts);
      post_times.push_back(MsSince(tp));
    }
    post_ms = Percentile(post_times, 0.5);
    if (!a.draw.empty()) tvm_ncnn::DrawDetections(a.input, found, a.draw);
  }
  // A top-k only of class scores: a detector exported without --task ([1,84,8400]) gets one plain line instead.
  const bool class_scores = post.task == "classify" || (!detector && deploy_app::ClassScores(y));
  const tvm_ncnn::TopK scored = class_scores ? tvm_ncnn::ScoreTopK(y, info.labels, a.topk) : tvm_ncnn::TopK{};
  const std::vector<tvm_ncnn::ScoredClass>& top = scored.classes;
  const std::string out_name = deploy_app::OutputName(info, 0);

  if (a.json) {
    std::string j = "{";
    j += "\"model\": " + JsonString(a.model);
    j += ", \"target\": " + JsonString(info.target) + ", \"triple\": " + JsonString(info.triple);
    j += ", \"ncnn_regions\": " + std::to_string(info.ncnn_regions);
    j += ", \"model_versions\": {\"sdk\": " + JsonString(info.sdk_version) + ", \"tvm\": " +
         JsonString(info.tvm_version) + ", \"ncnn\": " + JsonString(info.ncnn_version) + "}";
    j += ", \"runtime_versions\": {\"sdk\": " + JsonString(tvm_ncnn::SdkVersion()) + ", \"tvm\": " +
         JsonString(tvm_ncnn::TvmVersion()) + ", \"ncnn\": " + JsonString(tvm_ncnn::NcnnVersion()) + "}";
    j += ", \"input\": {\"path\": " + JsonString(a.input) + ", \"kind\": " + JsonString(image ? "image" : "npy") +
         ", \"name\": " + JsonString(want.name) + ", \"shape\": " + JsonShape(in.shape) +
         ", \"dtype\": " + JsonString(in.dtype) + "}";
    j += ", \"output\": {\"name\": " + JsonString(out_name) + ", \"shape\": " + JsonShape(y.shape) +
         ", \"dtype\": " + JsonString(y.dtype) + "}";
    j += ", \"outputs\": " + deploy_app::OutputsJson(info, outputs);
    j += ", \"threads\": " + std::to_string(model.threads());
    j += std::string(", \"fp16\": ") + (model.fp16() ? "true" : "false");
    j += ", \"precision\": " + JsonString(model.precision()) + ", \"exported_precision\": " +
         JsonString(info.precision);
    j += ", \"signer\": " + JsonString(model.signer());
    j += ", \"thread_policy\": " + JsonString(model.thread_policy());
    j += ", \"repeat\": " + std::to_string(a.repeat);
    j += ", \"load_ms\": " + JsonNumber(load_ms, "%.3f") + ", \"first_ms\": " + JsonNumber(first_ms, "%.3f") +
         ", \"p50_ms\": " + JsonNumber(p50, "%.3f") + ", \"p90_ms\": " + JsonNumber(p90, "%.3f");
    j += ", \"rss_mb\": " + JsonNumber(peak_rss_mb, "%.2f") + ", \"first_rss_mb\": " +
         JsonNumber(first_rss_mb, "%.2f") + ", \"warm_rss_mb\": " + JsonNumber(warm_rss_mb, "%.2f") +
         ", \"steady_rss_mb\": " + JsonNumber(steady_rss_mb, "%.2f");
    j += ", \"cpu_ms\": " + JsonNumber(cpu_ms, "%.3f");
    j += ", \"times_ms\": [";
    for (size_t i = 0; i < times.size(); ++i) j += (i ? ", " : "") + JsonNumber(times[i], "%.3f");
    j += "]";
    j += ", \"task\": " + JsonString(post.task) + ", \"preprocess_ms\": " + JsonNumber(pre_ms, "%.3f") +
         ", \"postprocess_ms\": " + JsonNumber(post_ms, "%.3f");
    if (detector) j += ", \"detections\": " + deploy_app::DetectionsJson(found, post.task);
    if (!a.draw.empty()) j += ", \"drawn\": " + JsonString(a.draw);
    j += ", \"scores\": " + (class_scores ? JsonString(scored.kind) : "null");
    if (class_scores) {
      j += ", \"topk\": [";
      for (size_t i = 0; i < top.size(); ++i) {
        if (i) j += ", ";
        j += "{\"index\": " + std::to_string(top[i].index) + ", \"label\": " + JsonString(top[i].label) +
             ", \"score\": " + JsonNumber(top[i].score) + "}";
      }
      j += "]";
    }
    if (!a.output.empty()) j += ", \"output_file\": " + JsonString(a.output);
    if (a.profile) j += ", \"profile_run_ms\": " + JsonNumber(profile.run_ms, "%.4f") + ", \"profile\": " +
                        JsonProfileRows(profile);
    j += "}\n";
    std::fputs(j.c_str(), stdout);
    return 0;
  }

  std::printf("model    %s (target %s, %s; %d ncnn region%s)\n", a.model.c_str(), info.target.c_str(),
              info.triple.c_str(), info.ncnn_regions, info.ncnn_regions == 1 ? "" : "s");
  std::printf("built by sdk %s, tvm %s, ncnn %s; runtime sdk %s, tvm %s, ncnn %s\n", info.sdk_version.c_str(),
              info.tvm_version.c_str(), info.ncnn_version.c_str(), tvm_ncnn::SdkVersion(),
              tvm_ncnn::TvmVersion(), tvm_ncnn::NcnnVersion());
  std::printf("threads  %d; precision %s (%s)\n", model.threads(), model.precision().c_str(),
              PrecisionNote(model, a.precision).c_str());
  std::printf("         %s\n", model.thread_policy().c_str());
  if (!model.signer().empty()) std::printf("signed by %s (--trust)\n", model.signer().c_str());
  if (image) {
    const tvm_ncnn::Preprocess& pp = info.preprocess;
    // The tensor's shape is this image's (a dynamic input's follows the image: --resize letterbox, height, limit).
    std::printf("input    %s -> '%s' %s %s (%s, mean %g,%g,%g, std %g,%g,%g, resize %s)\n", a.input.c_str(),
                want.name.c_str(), tvm_ncnn::ShapeString(in.shape).c_str(), in.dtype.c_str(), pp.color.c_str(),
                pp.mean[0], pp.mean[1], pp.mean[2], pp.std[0], pp.std[1], pp.std[2], ResizeText(pp).c_str());
  } else {
    std::printf("input    %s -> '%s' %s %s\n", a.input.c_str(), want.name.c_str(),
                tvm_ncnn::ShapeString(in.shape).c_str(), in.dtype.c_str());
  }
  std::fputs(deploy_app::OutputLines(info, outputs).c_str(), stdout);
  if (detector) {
    std::printf("%s   %zu found (%s, score > %g, iou %g; boxes in image pixels)\n", post.task.c_str(), found.size(),
                post.layout.c_str(), a.score >= 0 ? a.score : post.score, a.iou >= 0 ? a.iou : post.iou);
    std::fputs(deploy_app::DetectionsText(found, post.task).c_str(), stdout);
  } else if (!class_scores) {
    std::fputs(deploy_app::NotClassScoresLine(info, outputs).c_str(), stdout);
  } else {
    std::printf("top-%zu    %s\n", top.size(), scored.description.c_str());
    for (size_t i = 0; i < top.size(); ++i) {
      std::printf("  %2zu. %9.6f  [%lld] %s\n", i + 1, top[i].score, static_cast<long long>(top[i].index),
                  top[i].label.c_str());
    }
  }
  if (steady) {
    std::printf("timing   load %.2f ms, first run %.2f ms, steady p50 %.2f ms, p90 %.2f ms (%d runs)\n", load_ms,
                first_ms, p50, p90, a.repeat);
  } else {
    std::printf("timing   load %.2f ms, first run %.2f ms (no steady runs: --repeat 0)\n", load_ms, first_ms);
  }
  if (image || detector) {
    std::printf("pre/post preprocess %.2f ms (decode + resize)%s\n", pre_ms,
                detector ? (", postprocess " + JsonNumber(post_ms, "%.2f") + " ms (decode + NMS + mapping)").c_str()
                         : "");
  }
  if (!a.draw.empty()) std::printf("drawn    %s\n", a.draw.c_str());
  std::printf("memory   peak RSS %.1f MB, steady RSS %.1f MB\n", peak_rss_mb, steady_rss_mb);
  if (!saved.empty()) std::printf("saved    %s\n", saved.c_str());
  if (a.profile) std::fputs(tvm_ncnn::FormatProfile(profile).c_str(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
      std::fputs(Usage().c_str(), stdout);
      return 0;
    }
  }
  try {
    const Args args = ParseArgs(argc, argv);
    tvm_ncnn::CoordinateThreads(args.threads, argv);  // may execute deploy_app again, once (runtime.h)
    return Run(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "deploy_app: error: %s\n", e.message.c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "deploy_app: error: out of memory\n");
  } catch (const tvm_ncnn::Error& e) {  // already one printable line
    std::fprintf(stderr, "deploy_app: error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deploy_app: error: %s\n", OneLine(e.what()).c_str());
  } catch (...) {
    std::fprintf(stderr, "deploy_app: error: unknown failure\n");
  }
  return 1;
}
