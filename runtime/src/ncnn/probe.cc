// int8 calibration support (sdk_python/tvm_ncnn/int8/calibration.py drives it):
//   tvm_ncnn.probe_start(["<symbol>/<blob>", ...])  regions of any model run from now on also copy out those
//                                                   blobs (the fp32 activations a layer's int8 scale is set from)
//   tvm_ncnn.probe_take() -> {"<symbol>/<blob>": Tensor}   what the runs since the last take collected
//   tvm_ncnn.probe_stop()
//   tvm_ncnn.ncnn_net_run(param, weights, input_names, samples, output_names, threads) -> [[Tensor]]
//                                                   one region graph run alone on given inputs: the SDK tries a
//                                                   quantized graph against the fp32 one without a full export.
// Tensors use runtime/FORMAT.md's Tensor <-> ncnn::Mat mapping (batch 1 first, then c, d, h, w).
#include "ncnn/probe.h"

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <datareader.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "ffi_util.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace probe {
namespace {

namespace ffi = tvm::ffi;

std::atomic<bool> g_active{false};
std::mutex g_mu;
std::set<std::string> g_wanted;                  // "<symbol>/<blob>"
std::map<std::string, ffi::Tensor> g_collected;  // the latest value of each, until taken

// "ncnn region 'fused_0'" -> "fused_0" (module.cc's Where()).
std::string SymbolOf(const std::string& where) {
  const size_t a = where.find('\''), b = where.rfind('\'');
  return a == std::string::npos || b <= a ? where : where.substr(a + 1, b - a - 1);
}

// An fp32, elempack-1 Mat (Extractor::extract's default conversion) as a batch-1 tensor.
ffi::Tensor MatToTensor(const ncnn::Mat& m) {
  std::vector<int64_t> shape;
  switch (m.dims) {
    case 1: shape = {1, m.w}; break;
    case 2: shape = {1, m.h, m.w}; break;
    case 3: shape = {1, m.c, m.h, m.w}; break;
    case 4: shape = {1, m.c, m.d, m.h, m.w}; break;
    default: TVM_FFI_THROW(RuntimeError) << "probe: a blob of " << m.dims << " dims";
  }
  if (m.elemsize != 4 || m.elempack != 1) {
    TVM_FFI_THROW(RuntimeError) << "probe: a blob of element size " << m.elemsize << " (pack " << m.elempack
                                << "); only fp32 blobs are probed";
  }
  ffi::Tensor t = NewFfiTensor(shape, "float32");
  const size_t plane = static_cast<size_t>(m.w) * m.h * m.d;  // elements per channel
  const int channels = m.dims >= 3 ? m.c : 1;
  float* dst = static_cast<float*>(t.data_ptr());
  for (int q = 0; q < channels; ++q) std::memcpy(dst + q * plane, m.channel(q), plane * sizeof(float));
  return t;
}

// A batch-1 float32 tensor as a Mat (copied, so ncnn may pad channels as it likes).
ncnn::Mat TensorToMat(const ffi::Tensor& t, const std::string& what) {
  if (t.dtype().code != kDLFloat || t.dtype().bits != 32 || !t.IsContiguous() || t.ndim() < 2 ||
      t.ndim() > 5 || t.shape()[0] != 1) {
    TVM_FFI_THROW(ValueError) << "ncnn_net_run: " << what << " must be a contiguous float32 tensor of batch 1 "
                              << "with 1..4 more dims";
  }
  std::vector<int> d;
  for (int i = 1; i < t.ndim(); ++i) d.push_back(static_cast<int>(t.shape()[i]));
  ncnn::Mat m;
  if (d.size() == 1) m.create(d[0]);
  if (d.size() == 2) m.create(d[1], d[0]);
  if (d.size() == 3) m.create(d[2], d[1], d[0]);
  if (d.size() == 4) m.create(d[3], d[2], d[1], d[0]);
  const size_t plane = static_cast<size_t>(m.w) * m.h * m.d;
  const int channels = m.dims >= 3 ? m.c : 1;
  const float* src = reinterpret_cast<const float*>(static_cast<const char*>(t.data_ptr()) + t.byte_offset());
  for (int q = 0; q < channels; ++q) std::memcpy(m.channel(q), src + q * plane, plane * sizeof(float));
  return m;
}

void Start(const ffi::Array<ffi::String>& keys) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_wanted.clear();
  for (const ffi::String& k : keys) g_wanted.insert(std::string(k));
  g_collected.clear();
  g_active = true;
}

void Stop() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_active = false;
  g_wanted.clear();
  g_collected.clear();
}

ffi::Map<ffi::String, ffi::Tensor> Take() {
  std::lock_guard<std::mutex> lock(g_mu);
  ffi::Map<ffi::String, ffi::Tensor> out;
  for (auto& [k, v] : g_collected) out.Set(k, v);
  g_collected.clear();
  return out;
}

ffi::Array<ffi::Array<ffi::Tensor>> NetRun(const ffi::String& param, const ffi::Bytes& weights,
                                           const ffi::Array<ffi::String>& input_names,
                                           const ffi::Array<ffi::Array<ffi::Tensor>>& samples,
                                           const ffi::Array<ffi::String>& output_names, int64_t threads) {
  // fp32 for every layer that is not int8, as the runtime runs an int8 model on a CPU without fp16
  // arithmetic (this host): the SDK compares against the same numbers a device would compute.
  ncnn::Net net;
  net.opt.lightmode = true;
  net.opt.num_threads = threads > 0 ? static_cast<int>(threads) : DetectThreads();
  net.opt.use_vulkan_compute = false;
  net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = false;
  net.opt.use_bf16_storage = net.opt.use_bf16_packed = false;
  const std::string text(param);
  if (net.load_param_mem(text.c_str()) != 0) TVM_FFI_THROW(ValueError) << "ncnn_net_run: load_param failed";
  const unsigned char* begin = reinterpret_cast<const unsigned char*>(weights.data());
  const unsigned char* cursor = begin;
  ncnn::DataReaderFromMemory dr(cursor, weights.size());
  if (net.load_model(dr) != 0 || static_cast<size_t>(cursor - begin) != weights.size()) {
    TVM_FFI_THROW(ValueError) << "ncnn_net_run: the weights do not match the param text";
  }
  ffi::Array<ffi::Array<ffi::Tensor>> results;
  for (const ffi::Array<ffi::Tensor>& sample : samples) {
    if (sample.size() != input_names.size()) {
      TVM_FFI_THROW(ValueError) << "ncnn_net_run: " << sample.size() << " inputs for " << input_names.size()
                                << " input names";
    }
    ncnn::Extractor ex = net.create_extractor();
    for (size_t i = 0; i < sample.size(); ++i) {
      const std::string name(input_names[i]);
      if (ex.input(name.c_str(), TensorToMat(sample[i], "input '" + name + "'")) != 0) {
        TVM_FFI_THROW(ValueError) << "ncnn_net_run: no input blob '" << name << "'";
      }
    }
    ffi::Array<ffi::Tensor> outs;
    for (const ffi::String& o : output_names) {
      ncnn::Mat m;
      if (ex.extract(std::string(o).c_str(), m) != 0 || m.empty()) {
        TVM_FFI_THROW(RuntimeError) << "ncnn_net_run: could not compute blob '" << std::string(o) << "'";
      }
      outs.push_back(MatToTensor(m));
    }
    results.push_back(outs);
  }
  return results;
}

}  // namespace

bool Active() { return g_active.load(std::memory_order_relaxed); }

void Collect(const std::string& where, ncnn::Extractor& ex) {
  const std::string prefix = SymbolOf(where) + "/";
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto it = g_wanted.lower_bound(prefix); it != g_wanted.end() && it->compare(0, prefix.size(), prefix) == 0;
       ++it) {
    ncnn::Mat m;
    const std::string blob = it->substr(prefix.size());
    if (ex.extract(blob.c_str(), m) != 0 || m.empty()) {
      TVM_FFI_THROW(RuntimeError) << where << ": probe: no blob '" << blob << "'";
    }
    g_collected[*it] = MatToTensor(m);
  }
}

}  // namespace probe
}  // namespace tvm_ncnn

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("tvm_ncnn.probe_start", tvm_ncnn::probe::Start)
      .def("tvm_ncnn.probe_stop", tvm_ncnn::probe::Stop)
      .def("tvm_ncnn.probe_take", tvm_ncnn::probe::Take)
      .def("tvm_ncnn.ncnn_net_run", tvm_ncnn::probe::NetRun);
}
