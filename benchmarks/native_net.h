// The native-ncnn side of the benchmarks (ncnn_bench.cc, ncnn_detect_bench.cc): a net set up with the options the
// tvm-ncnn runtime sets (runtime/src/ncnn/region.cc, NcnnRegion::Build; the rest ncnn's defaults), so that the
// two sides differ only by what tvm-ncnn adds, and one run as a native ncnn user writes it.
#pragma once

#include <stdexcept>
#include <string>

#include "mat.h"
#include "net.h"

namespace native_net {

inline void Load(ncnn::Net& net, const std::string& param, const std::string& bin, int threads, bool fp16) {
  net.opt.lightmode = true;
  net.opt.num_threads = threads;
  net.opt.use_vulkan_compute = false;
  net.opt.use_packing_layout = true;
  net.opt.use_winograd_convolution = true;
  net.opt.use_sgemm_convolution = true;
  net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = fp16;
  net.opt.use_bf16_packed = net.opt.use_bf16_storage = false;
  if (net.load_param(param.c_str()) != 0) throw std::runtime_error("load_param failed: " + param);
  if (net.load_model(bin.c_str()) != 0) throw std::runtime_error("load_model failed: " + bin);
}

// One inference: extractor, input, extract (what both benchmarks time).
inline void Run(ncnn::Net& net, const std::string& in_blob, const ncnn::Mat& in, const std::string& out_blob,
                ncnn::Mat* out) {
  ncnn::Extractor ex = net.create_extractor();
  if (ex.input(in_blob.c_str(), in) != 0) throw std::runtime_error("no input blob " + in_blob);
  if (ex.extract(out_blob.c_str(), *out) != 0 || out->empty()) throw std::runtime_error("cannot extract " + out_blob);
}

}  // namespace native_net
