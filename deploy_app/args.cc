// deploy_app's command line: the usage text and the parsed arguments (args.h).
#include "args.h"

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <cstdlib>
#include <string>
#include <vector>

#include "tvm_ncnn/runtime.h"

namespace deploy_app {

std::string LowerExtension(const std::string& path) {
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

std::string JoinNames(const std::vector<std::string>& names, const std::string& sep, const std::string& last) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i == 0 ? "" : i + 1 == names.size() ? last : sep) + names[i];
  return out;
}

std::string Usage() {
  const std::vector<std::string> load = tvm_ncnn::LoadPrecisions();
  return
    "usage: deploy_app model.so INPUT [--threads N] [--repeat N] [--output out.npy|out.npz] [--topk K] [--json]\n"
    "                  [--precision " + JoinNames(load, "|", "|") + "] [--profile] [--trust KEY.pub]\n"
    "\n"
    "Runs a tvm-ncnn model.so once on INPUT, then --repeat more times, and prints its outputs (name, shape,\n"
    "dtype), the top-k of the first with labels when it is class scores (a detector's boxes when model.so\n"
    "records the task), and the load, first-run and steady (p50/p90) latency.\n"
    "\n"
    "  INPUT           a .jpg/.jpeg/.png/.bmp image (resized and normalized as the model's metadata says)\n"
    "                  or a .npy tensor of exactly the model input's shape and dtype\n"
    "  --threads N     threads for ncnn (1.." + std::to_string(tvm_ncnn::kMaxThreads) +
    "; default: the big cores of this machine)\n"
    "  --repeat N      steady-state runs after the first (0..100000; default 10; 0: the first run only)\n"
    "  --output FILE   save the outputs, as computed: FILE.npz holds every output as NAME.npy (numpy.load\n"
    "                  reads it); a .npy holds one, for a model with one output\n"
    "  --topk K        how many top classes to print (default 5)\n"
    "  --score S       detectors: the score threshold, 0..1 (default: the one model.so records)\n"
    "  --iou T         detectors: the NMS IoU threshold, 0..1 (default: the one model.so records)\n"
    "  --draw FILE     detectors: write the image with boxes, labels, masks and keypoints to FILE (.jpg/.png)\n"
    "  --json          print one JSON object instead of text\n"
    "  --precision P   " + JoinNames(load, ", ", " or ") +
    " for the layers that are not int8, instead of what the model was exported\n"
    "                  with; fp16 runs only where the CPU has fp16 arithmetic (Pi 5), fp32 elsewhere\n"
    "  --fp16          the same as --precision fp16\n"
    "  --trust KEY.pub refuse model.so, before loading it, unless KEY signed it (tvm-ncnn export --sign KEY)\n"
    "  --profile       then run --repeat more times timing each call: every ncnn region and TVM function,\n"
    "                  ms per run and share of the run, slowest first (with --json: a \"profile\" list)\n"
    "  -h, --help      print this help\n"
    "\n"
    "Threads: TVM's parallel ops run on ncnn's OpenMP threads (one pool), which wait as libgomp does by\n"
    "default, as native ncnn's do (OMP_WAIT_POLICY / GOMP_SPINCOUNT change it); TVM_NCNN_TVM_POOL=tvm gives\n"
    "TVM its own pool with short spins for both; TVM_NCNN_WAIT_POLICY=inherit sets no variable at all.\n";
}

int ParseInt(const std::string& flag, const std::string& text, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
    throw UsageError{flag + " needs an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                     ", got '" + text + "'"};
  }
  return static_cast<int>(v);
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    const bool is_flag = arg.size() > 1 && arg[0] == '-';
    size_t eq = arg.find('=');
    bool inline_value = is_flag && arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto next = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= argc) throw UsageError{arg + " needs a value"};
      return argv[++i];
    };
    if (!is_flag) {
      positional.push_back(arg);
    } else if (arg == "--threads") {
      a.threads = ParseInt(arg, next(), 1, tvm_ncnn::kMaxThreads);
    } else if (arg == "--repeat") {
      a.repeat = ParseInt(arg, next(), 0, 100000);
    } else if (arg == "--topk") {
      a.topk = ParseInt(arg, next(), 1, 1000000);
    } else if (arg == "--output") {
      a.output = next();
      if (a.output.empty()) throw UsageError{"--output needs a file name"};
    } else if (arg == "--score" || arg == "--iou") {
      const std::string text = next();
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(v >= 0 && v <= 1)) throw UsageError{arg + " needs a number from 0 to 1, got '" + text + "'"};
      (arg == "--score" ? a.score : a.iou) = v;
    } else if (arg == "--draw") {
      a.draw = next();
      const std::string ext = LowerExtension(a.draw);
      if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") throw UsageError{"--draw needs a .jpg or .png file name"};
    } else if (arg == "--json" && !inline_value) {
      a.json = true;
    } else if (arg == "--precision") {
      a.precision = next();
      const std::vector<std::string> names = tvm_ncnn::Precisions();
      if (std::find(names.begin(), names.end(), a.precision) == names.end()) {
        throw UsageError{"--precision needs " + JoinNames(names, ", ", " or ") + ", got '" + a.precision + "'"};
      }
    } else if (arg == "--trust") {
      a.trust = next();
      if (a.trust.empty()) throw UsageError{"--trust needs a public key file (KEY.pub)"};
    } else if (arg == "--fp16" && !inline_value) {
      a.precision = arg.substr(2);  // --fp16 is --precision fp16
    } else if (arg == "--profile" && !inline_value) {
      a.profile = true;
    } else {
      throw UsageError{"unknown option '" + std::string(argv[i]) + "' (see --help)"};
    }
  }
  if (positional.size() != 2) {
    throw UsageError{"expected model.so and INPUT, got " + std::to_string(positional.size()) +
                     " argument(s) (see --help)"};
  }
  a.model = positional[0];
  a.input = positional[1];
  if (a.profile && a.repeat == 0) throw UsageError{"--profile times --repeat runs: give --repeat 1 or more"};
  return a;
}

}  // namespace deploy_app
