// Building a region's ncnn::Net, and the checks that make a malformed graph an error instead of an
// out-of-bounds read (runtime/FORMAT.md, "Rules the ncnn graph must follow").
#include "ncnn/region.h"

#include <tvm/ffi/error.h>

#include <cpu.h>
#include <datareader.h>
#include <layer.h>
#include <layer/input.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <utility>

#include "ncnn/int8_chain.h"
#include "ncnn/mapped_weights.h"
#include "ncnn/probe.h"
#include "ncnn/stderr_capture.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

// ncnn reads weights through this: it always copies (no reference()), so ncnn owns its weights and the
// caller's buffer can be dropped once the net is built. Reads are bounds-checked.
class CopyingReader : public ncnn::DataReader {
 public:
  CopyingReader(const unsigned char* data, size_t size) : data_(data), size_(size) {}
  size_t read(void* buf, size_t size) const override {
    size_t n = std::min(size, size_ - pos_);
    if (n) std::memcpy(buf, data_ + pos_, n);
    pos_ += n;
    return n;
  }
  size_t consumed() const { return pos_; }

 private:
  const unsigned char* data_;
  size_t size_;
  mutable size_t pos_ = 0;
};

}  // namespace

NcnnRegion::NcnnRegion(std::string where, std::vector<BlobSpec> inputs, std::vector<BlobSpec> outputs)
    : where_(std::move(where)), inputs_(std::move(inputs)), outputs_(std::move(outputs)) {}

void NcnnRegion::Configure(int threads, bool fp16) {
  if (net_ && fp16 != fp16_) {
    TVM_FFI_THROW(ValueError) << where_ << ": configure: fp16 cannot change after the ncnn net is built "
                              << "(built with fp16=" << (fp16_ ? "true" : "false") << ")";
  }
  threads_ = threads;
  fp16_ = fp16;
  // Layers that size their work at build time (gemm tiling) keep the count they were built with: configure
  // before the first run for the full effect.
  if (net_) net_->opt.num_threads = EffectiveThreads();
}

int NcnnRegion::EffectiveThreads() const { return threads_ > 0 ? threads_ : DetectThreads(); }

void NcnnRegion::Build(const std::string& param, const unsigned char* weights, size_t weights_size,
                       const MappedWeights* mapped) {
  if (net_) return;
  auto net = std::make_unique<ncnn::Net>();
  ncnn::Option& opt = net->opt;
  opt.lightmode = true;
  opt.num_threads = EffectiveThreads();
  opt.use_vulkan_compute = false;
  opt.use_packing_layout = true;
  opt.use_winograd_convolution = true;
  opt.use_sgemm_convolution = true;
  opt.use_fp16_packed = fp16_;
  opt.use_fp16_storage = fp16_;
  opt.use_fp16_arithmetic = fp16_;
  opt.use_bf16_packed = false;
  opt.use_bf16_storage = false;

  // .param text. A bounded reader advances `cursor`, so we can tell what ncnn left unread.
  const unsigned char* begin = reinterpret_cast<const unsigned char*>(param.data());
  const unsigned char* cursor = begin;
  int rc;
  StderrCapture capture;
  {
    ncnn::DataReaderFromMemory dr(cursor, param.size());
    rc = net->load_param(dr);
  }
  if (rc != 0) {
    const std::string said = capture.Restore();
    TVM_FFI_THROW(ValueError) << where_ << ": ncnn load_param failed (error " << rc << ": "
                              << (said.empty() ? "no reason given" : said) << "): the param text is "
                              << "invalid or uses a layer this runtime's ncnn was built without";
  }
  const size_t used = static_cast<size_t>(cursor - begin);
  size_t junk = used;
  while (junk < param.size() && std::isspace(static_cast<unsigned char>(param[junk]))) ++junk;
  if (junk != param.size()) {
    TVM_FFI_THROW(ValueError) << where_ << ": ncnn read only " << used << " of " << param.size()
                              << " bytes of the param text: its header declares fewer layers than it holds";
  }
  CheckGraph(*net);

  // Weights, transformed by create_pipeline layer by layer: read in place from model.so's mapping (the pages
  // released behind ncnn as it goes), or, from a module that carries them in its bytes, copied into ncnn's Mats.
  size_t consumed = 0;
  if (mapped != nullptr) {
    ReleasingReader dr(*mapped);
    rc = net->load_model(dr);
    consumed = dr.consumed();
    dr.ReleaseAll();
  } else {
    CopyingReader dr(weights, weights_size);
    rc = net->load_model(dr);
    consumed = dr.consumed();
  }
  if (rc != 0) {
    const std::string said = capture.Restore();
    TVM_FFI_THROW(ValueError) << where_ << ": ncnn load_model failed (error " << rc
                              << (said.empty() ? "" : ": " + said) << ") after reading " << consumed
                              << " of " << weights_size << " weight bytes: the weights do not "
                              << "match the param text (truncated?)";
  }
  if (consumed != weights_size) {
    TVM_FFI_THROW(ValueError) << where_ << ": the param text uses " << consumed << " weight bytes but "
                              << weights_size << " were given: the weights do not match the param text";
  }
  // int8 layers feeding int8 layers pass int8 (int8_chain.h). Not under the calibration probe, which reads
  // intermediate blobs as fp32.
  if (!probe::Active()) {
    std::vector<int> outs;
    for (const BlobSpec& o : outputs_) outs.push_back(o.index);
    ChainInt8(*net, outs);
  }
  half_inputs_.assign(inputs_.size(), false);
  for (size_t i = 0; i < inputs_.size(); ++i) half_inputs_[i] = ReadAsHalf(*net, inputs_[i].index);
  net_ = std::move(net);
}

// Whether every layer reading `blob` stores fp16 on this CPU (ncnn's fp16 storage, ARMv8.2): ncnn would then cast
// the fp32 input to fp16 for them on every call, through a Cast layer it creates each time. Run hands it over in
// fp16 instead (CopyIn), which is the same rounding (IEEE round to nearest) in the one pass it makes anyway.
bool NcnnRegion::ReadAsHalf(const ncnn::Net& net, int blob) const {
#if NCNN_ARM82  // the build whose Net::forward casts for fp16 storage on asimdhp (net.cpp convert_layout)
  if (!net.opt.use_fp16_storage || !ncnn::cpu_support_arm_asimdhp() || probe::Active()) return false;
  bool read = false;
  for (const ncnn::Layer* layer : net.layers()) {
    if (std::find(layer->bottoms.begin(), layer->bottoms.end(), blob) == layer->bottoms.end()) continue;
    if (!layer->support_fp16_storage) return false;
    read = true;
  }
  return read;
#else
  return false;
#endif
}

// Rejects graphs ncnn accepted but cannot run as this region:
//  * every region input must be the blob of an Input layer that declares exactly the recorded dims, and
//    every Input layer must be fed by a region input;
//  * every blob is named (the header's blob count is not too high) and produced by a layer;
//  * every region output is a blob of the graph.
void NcnnRegion::CheckGraph(const ncnn::Net& net) {
  const std::vector<ncnn::Blob>& blobs = net.blobs();
  const std::vector<ncnn::Layer*>& layers = net.layers();
  auto find = [&](const std::string& name) {
    for (size_t i = 0; i < blobs.size(); ++i) {
      if (blobs[i].name == name) return static_cast<int>(i);
    }
    return -1;
  };
  size_t named = 0;
  for (const ncnn::Blob& b : blobs) named += b.name.empty() ? 0 : 1;
  if (named != blobs.size()) {
    TVM_FFI_THROW(ValueError) << where_ << ": the param header declares " << blobs.size()
                              << " blobs but the layers name only " << named;
  }
  for (size_t i = 0; i < inputs_.size(); ++i) {
    inputs_[i].index = find(inputs_[i].name);
    if (inputs_[i].index < 0) {
      TVM_FFI_THROW(ValueError) << where_ << ": input " << i << " blob '" << inputs_[i].name
                                << "' is not in the param text";
    }
  }
  for (size_t i = 0; i < inputs_.size(); ++i) CheckInputLayer(net, i);
  for (const ncnn::Layer* layer : layers) {
    if (layer == nullptr || layer->type != "Input") continue;
    for (int top : layer->tops) {
      bool fed = std::any_of(inputs_.begin(), inputs_.end(), [&](const BlobSpec& b) { return b.index == top; });
      if (!fed) {
        TVM_FFI_THROW(ValueError) << where_ << ": Input layer '" << layer->name
                                  << "' is not fed by any region input";
      }
    }
  }
  for (const ncnn::Blob& b : blobs) {
    if (b.producer < 0) {
      TVM_FFI_THROW(ValueError) << where_ << ": blob '" << b.name << "' is consumed but no layer produces it";
    }
  }
  for (size_t i = 0; i < outputs_.size(); ++i) {
    outputs_[i].index = find(outputs_[i].name);
    if (outputs_[i].index < 0) {
      TVM_FFI_THROW(ValueError) << where_ << ": output " << i << " blob '" << outputs_[i].name
                                << "' is not in the param text";
    }
  }
}

// Input i's blob must come from an Input layer that declares exactly its dims (FORMAT.md's mapping: k=1: 0=w;
// k=2: 0=w 1=h; k=3: 0=w 1=h 2=c; k=4: 0=w 1=h 11=d 2=c; others unset).
void NcnnRegion::CheckInputLayer(const ncnn::Net& net, size_t i) const {
  const BlobSpec& in = inputs_[i];
  const int producer = net.blobs()[in.index].producer;
  const std::vector<ncnn::Layer*>& layers = net.layers();
  const ncnn::Layer* layer =
      producer >= 0 && producer < static_cast<int>(layers.size()) ? layers[producer] : nullptr;
  if (layer == nullptr || layer->type != "Input") {
    TVM_FFI_THROW(ValueError) << where_ << ": input " << i << " blob '" << in.name
                              << "' is not the output of an Input layer";
  }
  const auto* decl = static_cast<const ncnn::Input*>(layer);
  const int k = static_cast<int>(in.shape.size()) - 1;
  // a dynamic size is 0 in the Input's params, as ncnn writes a size it does not know
  auto dim = [&](int j) { return in.shape[1 + j] == kDynamicDim ? 0 : static_cast<int>(in.shape[1 + j]); };
  int w = 0, h = 0, d = 0, c = 0;  // expected; 0 = unset
  if (k == 1) w = dim(0);
  if (k == 2) w = dim(1), h = dim(0);
  if (k == 3) w = dim(2), h = dim(1), c = dim(0);
  if (k == 4) w = dim(3), h = dim(2), d = dim(1), c = dim(0);
  if (decl->w != w || decl->h != h || decl->d != d || decl->c != c) {
    TVM_FFI_THROW(ValueError) << where_ << ": input " << i << " ('" << in.name << "') shape "
                              << ShapeString(in.shape) << " does not match its Input layer (w=" << decl->w
                              << " h=" << decl->h << " d=" << decl->d << " c=" << decl->c << ", expected w=" << w
                              << " h=" << h << " d=" << d << " c=" << c << ")";
  }
}

void ValidateBlobs(const std::string& where, const std::vector<BlobSpec>& inputs,
                   const std::vector<BlobSpec>& outputs) {
  if (inputs.empty() || outputs.empty()) {
    TVM_FFI_THROW(ValueError) << where << ": needs at least one input and one output (got " << inputs.size()
                              << " inputs, " << outputs.size() << " outputs)";
  }
  if (inputs.size() + outputs.size() > kMaxTensors) TVM_FFI_THROW(ValueError) << where << ": too many inputs/outputs";
  for (const auto* list : {&inputs, &outputs}) {
    const char* role = list == &inputs ? "input" : "output";
    for (size_t i = 0; i < list->size(); ++i) {
      const BlobSpec& b = (*list)[i];
      if (b.name.empty() || b.name.size() > kMaxBlobNameLen ||
          std::any_of(b.name.begin(), b.name.end(),
                      [](char c) { return std::isspace(static_cast<unsigned char>(c)) || !c; })) {
        TVM_FFI_THROW(ValueError) << where << ": " << role << " " << i << " blob name '" << b.name
                                  << "' is not a valid ncnn blob name";
      }
      const std::string blob = std::string(role) + " " + std::to_string(i) + " ('" + b.name + "')";
      if (b.shape.size() < kMinNdim || b.shape.size() > kMaxNdim) {
        TVM_FFI_THROW(ValueError) << where << ": " << blob << " shape " << ShapeString(b.shape) << " has "
                                  << b.shape.size() << " dims; ncnn regions take a batch dim plus 1..4 dims";
      }
      int64_t numel = 1;
      for (int64_t d : b.shape) {
        if (d == kDynamicDim && &d != &b.shape[0]) continue;  // a size that changes from call to call
        if (d <= 0 || d > kMaxDim) {
          TVM_FFI_THROW(ValueError) << where << ": " << blob << " has an invalid shape " << ShapeString(b.shape);
        }
        numel *= d;
        if (numel > kMaxElements) {
          TVM_FFI_THROW(ValueError) << where << ": " << blob << " shape " << ShapeString(b.shape) << " is too large";
        }
      }
      if (b.shape[0] != 1) {
        TVM_FFI_THROW(ValueError) << where << ": " << blob << " has batch " << b.shape[0] << " in shape "
                                  << ShapeString(b.shape) << "; ncnn regions need batch 1";
      }
    }
  }
}

}  // namespace tvm_ncnn
