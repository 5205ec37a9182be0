// The "ncnn" runtime module: one offloaded region (subgraph) of a model, run by one ncnn::Net.
// Contract: runtime/FORMAT.md ("ncnn module").
//
// Life cycle
//   created  by tvm_ncnn.ncnn_module_create at export time (keeps param + weights: SaveToBytes needs
//            them), or by ffi.Module.load_from_bytes.ncnn when model.so is loaded (holds the loader's
//            bytes -- no copy -- only until the net is built, then drops them: ncnn owns its own
//            copy of the weights, so memory is what native ncnn uses).
//   built    once, on the first tvm_ncnn.configure or the first call of <symbol>: load_param from the
//            .param text, load_model from the weights through a copying DataReader.
//   called   <symbol>(in..., out...) by the Relax VM (call_dps_packed): inputs are handed to ncnn as
//            views of the TVM tensors when their layout is ncnn's (no copy; else copied into a Mat
//            allocated once), extract, copy out. Calls are serialized by a mutex; each uses a fresh
//            Extractor (cheap) on the shared Net.
#include <tvm/ffi/cast.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <cpu.h>
#include <datareader.h>
#include <layer.h>
#include <layer/input.h>
#include <mat.h>
#include <net.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "byte_io.h"

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;

constexpr char kMagic[8] = {'T', 'V', 'M', 'N', 'C', 'N', 'N', '\0'};
// Version 2 = version 1 + a checksum trailer (FORMAT.md). Version 1 (no checksum) is still read, so
// models exported before the checksum keep loading.
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kOldestFormatVersion = 1;

// Caps that keep malformed bytes from asking for absurd amounts of memory.
constexpr uint64_t kMaxSymbolLen = 4096;
constexpr uint64_t kMaxBlobNameLen = 255;  // ncnn scans blob names with %255s
constexpr uint64_t kMaxParamLen = uint64_t(1) << 30;
constexpr uint64_t kMaxWeightsLen = uint64_t(1) << 40;
constexpr uint32_t kMaxTensors = 4096;
constexpr uint32_t kMinNdim = 2;  // batch + at least one ncnn dim
constexpr uint32_t kMaxNdim = 5;  // batch + up to 4 ncnn dims (w, h, d, c)
constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxElements = int64_t(1) << 32;
// Inputs aligned like this (TVM allocates 64-byte aligned) are read by ncnn in place when their layout
// allows it; others are copied into ncnn's own Mat.
constexpr uintptr_t kViewAlign = 64;
// ncnn kernels may read up to NCNN_MALLOC_OVERREAD (64) bytes past the end of a Mat -- its own allocations
// carry that slack. A view of a TVM tensor is only used when those bytes lie in the page of the tensor's last
// byte, so they are mapped (their values are never used); otherwise the input is copied.
constexpr uintptr_t kOverread = 64;

bool SafeToView(const float* data, size_t nbytes) {
  static const uintptr_t page = [] {
    long p = sysconf(_SC_PAGESIZE);
    return static_cast<uintptr_t>(p > 0 ? p : 4096);
  }();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  if (begin % kViewAlign != 0 || nbytes == 0) return false;
  const uintptr_t last = begin + nbytes - 1;
  return (last % page) + kOverread < page;
}

std::string ShapeStr(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << ']';
  return os.str();
}

std::string ShapeStr(const int64_t* shape, int ndim) {
  return ShapeStr(std::vector<int64_t>(shape, shape + std::max(ndim, 0)));
}

std::string DTypeStr(DLDataType t) {
  std::ostringstream os;
  switch (t.code) {
    case kDLFloat: os << "float"; break;
    case kDLInt: os << "int"; break;
    case kDLUInt: os << "uint"; break;
    case kDLBfloat: os << "bfloat"; break;
    case kDLBool: os << "bool"; break;
    default: os << "type" << int(t.code); break;
  }
  os << int(t.bits);
  if (t.lanes != 1) os << 'x' << t.lanes;
  return os.str();
}

// The TVM shape an ncnn::Mat corresponds to (inverse of the FORMAT.md mapping), for messages.
std::vector<int64_t> MatShape(const ncnn::Mat& m) {
  switch (m.dims) {
    case 1: return {1, m.w};
    case 2: return {1, m.h, m.w};
    case 3: return {1, m.c, m.h, m.w};
    case 4: return {1, m.c, m.d, m.h, m.w};
    default: return {};
  }
}

// ncnn says why it refuses a graph only by printing to stderr (NCNN_LOGE) and returning -1. While a net
// is built, fd 2 goes to a temporary file; what ncnn printed then becomes part of the one-line error
// instead of stray lines before it. On success the text is passed on to the real stderr, so output
// another thread wrote meanwhile is delayed, never lost. One capture at a time in the process.
class StderrCapture {
 public:
  StderrCapture() : lock_(Mutex()) {
    std::fflush(stderr);
    file_ = std::tmpfile();
    if (file_ == nullptr) return;  // no temporary file: ncnn prints as usual
    saved_ = dup(STDERR_FILENO);
    if (saved_ < 0 || dup2(fileno(file_), STDERR_FILENO) < 0) Restore();
  }
  ~StderrCapture() { Pass(Restore()); }

  // Restores stderr; returns what was written to it meanwhile, as one line ("a; b").
  std::string Restore() {
    std::string text;
    if (saved_ >= 0) {
      std::fflush(stderr);
      dup2(saved_, STDERR_FILENO);
      close(saved_);
      saved_ = -1;
      std::rewind(file_);
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), file_)) > 0 && text.size() < (1u << 16)) text.append(buf, n);
    }
    if (file_ != nullptr) std::fclose(file_);
    file_ = nullptr;
    std::string joined, line;
    std::istringstream lines(text);
    while (std::getline(lines, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      joined += (joined.empty() ? "" : "; ") + line;
    }
    return joined;
  }
  // Writes text restored but not used to the real stderr.
  static void Pass(const std::string& text) {
    if (!text.empty()) std::fprintf(stderr, "%s\n", text.c_str());
  }

 private:
  static std::mutex& Mutex() {
    static std::mutex mu;
    return mu;
  }
  std::lock_guard<std::mutex> lock_;
  std::FILE* file_ = nullptr;
  int saved_ = -1;
};

// ncnn reads weights through this: it always copies (no reference()), so ncnn owns its weights and
// our buffer can be dropped once the net is built. Reads are bounds-checked.
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

struct BlobSpec {
  std::string name;
  std::vector<int64_t> shape;  // TVM shape, batch first
  int index = -1;              // ncnn blob index, once the net is built
};

class NcnnModuleObj : public ffi::ModuleObj {
 public:
  // The weights are bytes [weights_offset, weights_offset + weights_size) of `weights_blob`, which
  // is held (not copied) until the net is built.
  NcnnModuleObj(std::string symbol, std::string param, ffi::Bytes weights_blob,
                size_t weights_offset, size_t weights_size, std::vector<BlobSpec> inputs,
                std::vector<BlobSpec> outputs, bool keep_weights_after_build)
      : symbol_(std::move(symbol)),
        param_(std::move(param)),
        weights_blob_(std::move(weights_blob)),
        weights_offset_(weights_offset),
        weights_size_(weights_size),
        inputs_(std::move(inputs)),
        outputs_(std::move(outputs)),
        keep_weights_(keep_weights_after_build) {
    if (weights_offset_ > weights_blob_.size() ||
        weights_size_ > weights_blob_.size() - weights_offset_) {
      TVM_FFI_THROW(InternalError) << Where() << ": weights out of range";
    }
    Validate();
  }

  const char* kind() const final { return "ncnn"; }
  int GetPropertyMask() const final {
    return ffi::Module::kBinarySerializable | ffi::Module::kRunnable;
  }

  ffi::Optional<ffi::Function> GetFunction(const ffi::String& name) final {
    ffi::ObjectPtr<ffi::Object> self = ffi::GetObjectPtr<ffi::Object>(this);
    if (name == symbol_) {
      return ffi::Function([self, this](ffi::PackedArgs args, ffi::Any* rv) { Run(args); });
    }
    if (name == "tvm_ncnn.configure") {
      return ffi::Function::FromTyped(
          [self, this](int64_t threads, bool fp16) { Configure(threads, fp16); });
    }
    if (name == "tvm_ncnn.region_info") {
      return ffi::Function::FromTyped([self, this]() { return RegionInfo(); });
    }
    return std::nullopt;
  }

  ffi::Bytes SaveToBytes() const final {
    std::lock_guard<std::mutex> lock(mu_);
    if (weights_dropped_) {
      TVM_FFI_THROW(RuntimeError)
          << Where() << ": cannot serialize: the weight bytes were released after the ncnn net "
          << "was built (a module loaded from model.so is run-only; re-export from the SDK)";
    }
    detail::ByteWriter w;
    w.Reserve(64 + symbol_.size() + param_.size() + weights_size_);
    w.Raw(kMagic, sizeof(kMagic));
    w.U32(kFormatVersion);
    w.Str(symbol_);
    w.Str(param_);
    w.Str(std::string_view(weights_blob_.data() + weights_offset_, weights_size_));
    for (const auto* list : {&inputs_, &outputs_}) {
      w.U32(static_cast<uint32_t>(list->size()));
      for (const BlobSpec& b : *list) {
        w.Str(b.name);
        w.U32(static_cast<uint32_t>(b.shape.size()));
        for (int64_t d : b.shape) w.I64(d);
      }
    }
    w.ChecksumTrailer();
    return ffi::Bytes(w.Take());
  }

  static ffi::Module LoadFromBytes(const ffi::Bytes& bytes) {
    detail::ByteReader r(bytes.data(), bytes.size(), "ncnn module");
    std::string magic = r.Fixed(sizeof(kMagic), "magic");
    if (std::memcmp(magic.data(), kMagic, sizeof(kMagic)) != 0) {
      TVM_FFI_THROW(ValueError) << "ncnn module: bad magic (expected \"TVMNCNN\\0\"): not an "
                                << "ncnn region module, or corrupt data";
    }
    uint32_t version = r.U32("format version");
    if (version < kOldestFormatVersion || version > kFormatVersion) {
      TVM_FFI_THROW(ValueError) << "ncnn module: unknown format version " << version
                                << " (this runtime reads versions " << kOldestFormatVersion << " to "
                                << kFormatVersion << "); rebuild model.so with a matching SDK";
    }
    if (version >= 2) r.VerifyChecksumTrailer();
    std::string symbol = r.Str("symbol", kMaxSymbolLen);
    r.set_context("ncnn region '" + symbol + "'");
    std::string param = r.Str("param text", kMaxParamLen);
    size_t weights_size = 0;
    size_t weights_offset = r.StrSpan("weights", kMaxWeightsLen, &weights_size);
    std::vector<BlobSpec> inputs = ReadBlobs(&r, "input");
    std::vector<BlobSpec> outputs = ReadBlobs(&r, "output");
    r.ExpectEnd();
    return ffi::Module(ffi::make_object<NcnnModuleObj>(
        std::move(symbol), std::move(param), bytes, weights_offset, weights_size,
        std::move(inputs), std::move(outputs), /*keep_weights_after_build=*/false));
  }

 private:
  std::string Where() const { return "ncnn region '" + symbol_ + "'"; }

  static std::vector<BlobSpec> ReadBlobs(detail::ByteReader* r, const char* role) {
    std::string what = std::string("number of ") + role + "s";
    uint32_t n = r->U32(what.c_str());
    if (n > kMaxTensors) {
      TVM_FFI_THROW(ValueError) << r->context() << ": " << n << " " << role
                                << "s is more than the limit of " << kMaxTensors
                                << " (corrupt data)";
    }
    std::vector<BlobSpec> out(n);
    for (uint32_t i = 0; i < n; ++i) {
      std::string field = std::string(role) + " " + std::to_string(i);
      out[i].name = r->Str((field + " blob name").c_str(), kMaxBlobNameLen);
      uint32_t ndim = r->U32((field + " ndim").c_str());
      if (ndim < kMinNdim || ndim > kMaxNdim) {
        TVM_FFI_THROW(ValueError) << r->context() << ": " << field << " ('" << out[i].name
                                  << "') has ndim " << ndim << ", expected " << kMinNdim << ".."
                                  << kMaxNdim;
      }
      out[i].shape.resize(ndim);
      for (uint32_t k = 0; k < ndim; ++k) out[i].shape[k] = r->I64((field + " dims").c_str());
    }
    return out;
  }

  // Checks what both constructors receive; throws ValueError naming the problem.
  void Validate() const {
    if (symbol_.empty()) TVM_FFI_THROW(ValueError) << "ncnn module: empty symbol";
    if (param_.find('\0') != std::string::npos) {
      TVM_FFI_THROW(ValueError) << Where() << ": the param text contains a NUL byte";
    }
    if (inputs_.empty() || outputs_.empty()) {
      TVM_FFI_THROW(ValueError) << Where() << ": needs at least one input and one output (got "
                                << inputs_.size() << " inputs, " << outputs_.size()
                                << " outputs)";
    }
    if (inputs_.size() + outputs_.size() > kMaxTensors) {
      TVM_FFI_THROW(ValueError) << Where() << ": too many inputs/outputs";
    }
    for (const auto* list : {&inputs_, &outputs_}) {
      const char* role = list == &inputs_ ? "input" : "output";
      for (size_t i = 0; i < list->size(); ++i) {
        const BlobSpec& b = (*list)[i];
        if (b.name.empty() || b.name.size() > kMaxBlobNameLen ||
            std::any_of(b.name.begin(), b.name.end(),
                        [](char c) { return std::isspace(static_cast<unsigned char>(c)) || !c; })) {
          TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " blob name '"
                                    << b.name << "' is not a valid ncnn blob name";
        }
        if (b.shape.size() < kMinNdim || b.shape.size() > kMaxNdim) {
          TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " ('" << b.name
                                    << "') shape " << ShapeStr(b.shape) << " has "
                                    << b.shape.size() << " dims; ncnn regions take a batch dim "
                                    << "plus 1..4 dims";
        }
        int64_t numel = 1;
        for (int64_t d : b.shape) {
          if (d <= 0 || d > kMaxDim) {
            TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " ('" << b.name
                                      << "') has an invalid shape " << ShapeStr(b.shape);
          }
          numel *= d;
          if (numel > kMaxElements) {
            TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " ('" << b.name
                                      << "') shape " << ShapeStr(b.shape) << " is too large";
          }
        }
        if (b.shape[0] != 1) {
          TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " ('" << b.name
                                    << "') has batch " << b.shape[0] << " in shape "
                                    << ShapeStr(b.shape) << "; ncnn regions need batch 1";
        }
      }
    }
  }

  void Configure(int64_t threads, bool fp16) {
    std::lock_guard<std::mutex> lock(mu_);
    if (threads < 0 || threads > 4096) {
      TVM_FFI_THROW(ValueError) << Where() << ": configure: invalid thread count " << threads
                                << " (0 = the big cores of this machine)";
    }
    if (net_ && fp16 != fp16_) {
      TVM_FFI_THROW(ValueError) << Where() << ": configure: fp16 cannot change after the ncnn "
                                << "net is built (built with fp16=" << (fp16_ ? "true" : "false")
                                << ")";
    }
    threads_ = static_cast<int>(threads);
    fp16_ = fp16;
    if (net_) {
      // Applies to the next calls. Layers that size their work at build time (gemm tiling) keep
      // the count they were built with: configure before the first run for the full effect.
      net_->opt.num_threads = EffectiveThreads();
    } else {
      BuildLocked();
    }
  }

  int EffectiveThreads() const {
    return threads_ > 0 ? threads_ : std::max(1, ncnn::get_big_cpu_count());
  }

  void BuildLocked() {
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
    const unsigned char* begin = reinterpret_cast<const unsigned char*>(param_.data());
    const unsigned char* cursor = begin;
    int rc;
    StderrCapture capture;
    {
      ncnn::DataReaderFromMemory dr(cursor, param_.size());
      rc = net->load_param(dr);
    }
    if (rc != 0) {
      const std::string said = capture.Restore();
      TVM_FFI_THROW(ValueError) << Where() << ": ncnn load_param failed (error " << rc << ": "
                                << (said.empty() ? "no reason given" : said) << "): the param text is "
                                << "invalid or uses a layer this runtime's ncnn was built without";
    }
    size_t used = static_cast<size_t>(cursor - begin);
    size_t junk = used;
    while (junk < param_.size() && std::isspace(static_cast<unsigned char>(param_[junk]))) ++junk;
    if (junk != param_.size()) {
      TVM_FFI_THROW(ValueError) << Where() << ": ncnn read only " << used << " of "
                                << param_.size() << " bytes of the param text: its header "
                                << "declares fewer layers than it holds";
    }
    CheckGraph(*net);

    // Weights: copied into ncnn's own Mats, then transformed by create_pipeline.
    {
      CopyingReader dr(
          reinterpret_cast<const unsigned char*>(weights_blob_.data()) + weights_offset_,
          weights_size_);
      rc = net->load_model(dr);
      if (rc != 0) {
        const std::string said = capture.Restore();
        TVM_FFI_THROW(ValueError) << Where() << ": ncnn load_model failed (error " << rc
                                  << (said.empty() ? "" : ": " + said) << ") after reading "
                                  << dr.consumed() << " of "
                                  << weights_size_ << " weight bytes: the weights do not "
                                  << "match the param text (truncated?)";
      }
      if (dr.consumed() != weights_size_) {
        TVM_FFI_THROW(ValueError) << Where() << ": the param text uses " << dr.consumed()
                                  << " weight bytes but " << weights_size_
                                  << " were given: the weights do not match the param text";
      }
    }

    net_ = std::move(net);
    in_mats_.assign(inputs_.size(), ncnn::Mat());  // allocated on first use (CopyIn)
    if (!keep_weights_) {
      weights_blob_ = ffi::Bytes();
      weights_offset_ = weights_size_ = 0;
      weights_dropped_ = true;
    }
  }

  // Rejects graphs ncnn accepted but cannot run as this region. ncnn itself never checks that a
  // fed Mat has the shape its layers were built for (a mismatch reads out of bounds), so:
  //  * every region input must be the blob of an Input layer that declares exactly the recorded
  //    dims (k=1: 0=w; k=2: 0=w 1=h; k=3: 0=w 1=h 2=c; k=4: 0=w 1=h 11=d 2=c; others unset),
  //    and every Input layer must be fed by a region input;
  //  * every blob is named (the header's blob count is not too high) and produced by a layer;
  //  * every region output is a blob of the graph.
  void CheckGraph(const ncnn::Net& net) {
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
      TVM_FFI_THROW(ValueError) << Where() << ": the param header declares " << blobs.size()
                                << " blobs but the layers name only " << named;
    }
    for (size_t i = 0; i < inputs_.size(); ++i) {
      inputs_[i].index = find(inputs_[i].name);
      if (inputs_[i].index < 0) {
        TVM_FFI_THROW(ValueError) << Where() << ": input " << i << " blob '" << inputs_[i].name
                                  << "' is not in the param text";
      }
    }
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const BlobSpec& in = inputs_[i];
      const int producer = blobs[in.index].producer;
      const ncnn::Layer* layer =
          producer >= 0 && producer < static_cast<int>(layers.size()) ? layers[producer] : nullptr;
      if (layer == nullptr || layer->type != "Input") {
        TVM_FFI_THROW(ValueError) << Where() << ": input " << i << " blob '" << in.name
                                  << "' is not the output of an Input layer";
      }
      const auto* decl = static_cast<const ncnn::Input*>(layer);
      const int k = static_cast<int>(in.shape.size()) - 1;
      auto dim = [&](int j) { return static_cast<int>(in.shape[1 + j]); };
      // Expected (w, h, d, c) of the Input layer; 0 = unset.
      int w = 0, h = 0, d = 0, c = 0;
      if (k == 1) w = dim(0);
      if (k == 2) w = dim(1), h = dim(0);
      if (k == 3) w = dim(2), h = dim(1), c = dim(0);
      if (k == 4) w = dim(3), h = dim(2), d = dim(1), c = dim(0);
      if (decl->w != w || decl->h != h || decl->d != d || decl->c != c) {
        TVM_FFI_THROW(ValueError) << Where() << ": input " << i << " ('" << in.name
                                  << "') shape " << ShapeStr(in.shape) << " does not match its "
                                  << "Input layer (w=" << decl->w << " h=" << decl->h
                                  << " d=" << decl->d << " c=" << decl->c << ", expected w=" << w
                                  << " h=" << h << " d=" << d << " c=" << c << ")";
      }
    }
    for (size_t l = 0; l < layers.size(); ++l) {
      if (layers[l] == nullptr || layers[l]->type != "Input") continue;
      for (int top : layers[l]->tops) {
        bool fed = std::any_of(inputs_.begin(), inputs_.end(),
                               [&](const BlobSpec& b) { return b.index == top; });
        if (!fed) {
          TVM_FFI_THROW(ValueError) << Where() << ": Input layer '" << layers[l]->name
                                    << "' is not fed by any region input";
        }
      }
    }
    for (size_t i = 0; i < blobs.size(); ++i) {
      if (blobs[i].producer < 0) {
        TVM_FFI_THROW(ValueError) << Where() << ": blob '" << blobs[i].name
                                  << "' is consumed but no layer produces it";
      }
    }
    for (size_t i = 0; i < outputs_.size(); ++i) {
      outputs_[i].index = find(outputs_[i].name);
      if (outputs_[i].index < 0) {
        TVM_FFI_THROW(ValueError) << Where() << ": output " << i << " blob '" << outputs_[i].name
                                  << "' is not in the param text";
      }
    }
  }

  // Checks an argument of the DPS call against the recorded spec; returns its data pointer.
  float* CheckTensor(const ffi::AnyView& arg, size_t arg_index, const char* role, size_t i,
                     const BlobSpec& spec) const {
    std::optional<DLTensor*> maybe = arg.try_cast<DLTensor*>();
    if (!maybe.has_value() || *maybe == nullptr) {
      TVM_FFI_THROW(ValueError) << Where() << ": argument " << arg_index << " (" << role << " " << i
                                << ", '" << spec.name << "') is a " << arg.GetTypeKey()
                                << ", expected a tensor";
    }
    const DLTensor* t = *maybe;
    if (t->device.device_type != kDLCPU) {
      TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " ('" << spec.name
                                << "') is on device type " << int(t->device.device_type)
                                << ", expected the CPU";
    }
    if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1) {
      TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " ('" << spec.name
                                << "') dtype mismatch: expected float32, got "
                                << DTypeStr(t->dtype);
    }
    bool same = t->ndim == static_cast<int>(spec.shape.size()) &&
                std::equal(spec.shape.begin(), spec.shape.end(), t->shape);
    if (!same) {
      TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " ('" << spec.name
                                << "') shape mismatch: expected " << ShapeStr(spec.shape)
                                << ", got " << ShapeStr(t->shape, t->ndim);
    }
    if (t->strides != nullptr) {
      int64_t expect = 1;
      for (int d = t->ndim - 1; d >= 0; --d) {
        if (t->shape[d] != 1 && t->strides[d] != expect) {
          TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " ('" << spec.name
                                    << "') is not contiguous";
        }
        expect *= t->shape[d];
      }
    }
    if (t->data == nullptr) {
      TVM_FFI_THROW(ValueError) << Where() << ": " << role << " " << i << " ('" << spec.name
                                << "') has no data";
    }
    return reinterpret_cast<float*>(static_cast<char*>(t->data) + t->byte_offset);
  }

  void Run(ffi::PackedArgs args) {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t n_in = inputs_.size(), n_out = outputs_.size();
    if (static_cast<size_t>(args.size()) != n_in + n_out) {
      TVM_FFI_THROW(ValueError) << Where() << ": expects " << n_in << " inputs and " << n_out
                                << " outputs (" << (n_in + n_out) << " tensors), got "
                                << args.size() << " arguments";
    }
    // Check every argument before running anything.
    std::vector<const float*> in_data(n_in);
    std::vector<float*> out_data(n_out);
    for (size_t i = 0; i < n_in; ++i) in_data[i] = CheckTensor(args[i], i, "input", i, inputs_[i]);
    for (size_t j = 0; j < n_out; ++j) {
      out_data[j] = CheckTensor(args[n_in + j], n_in + j, "output", j, outputs_[j]);
    }
    BuildLocked();

    ncnn::Extractor ex = net_->create_extractor();
    for (size_t i = 0; i < n_in; ++i) {
      // The TVM tensor, seen as an ncnn Mat (no copy). ncnn pads each channel to 16 bytes (cstep):
      // when that adds nothing, the data is aligned and ncnn's over-reads stay in mapped memory
      // (SafeToView), ncnn reads the tensor in place. The view's reference count is ours and never
      // reaches zero, so ncnn never frees TVM's memory, and in-place layers see a shared blob and work
      // on a copy instead of writing into the input.
      ncnn::Mat view = WrapInput(i, in_data[i]);
      const size_t plane = static_cast<size_t>(view.w) * view.h * view.d;  // elements per channel
      const size_t channels = view.dims >= 3 ? static_cast<size_t>(view.c) : 1;
      int rc;
      if (view.cstep == plane && SafeToView(in_data[i], plane * channels * sizeof(float))) {
        view.refcount = &view_refs_;
        NCNN_XADD(view.refcount, 1);
        rc = ex.input(inputs_[i].index, view);
      } else {
        rc = ex.input(inputs_[i].index, CopyIn(i, view));
      }
      if (rc != 0) {
        TVM_FFI_THROW(RuntimeError) << Where() << ": ncnn rejected input " << i << " ('"
                                    << inputs_[i].name << "'), error " << rc;
      }
    }
    for (size_t j = 0; j < n_out; ++j) {
      // Released when this call returns: an output Mat kept across calls would keep its block out of
      // ncnn's pool allocator between calls -- a block that may be far larger than the output, since the
      // net's pool (size_compare_ratio 0) hands out any free block big enough.
      ncnn::Mat m;
      int rc = ex.extract(outputs_[j].index, m);
      if (rc != 0 || m.empty()) {
        TVM_FFI_THROW(RuntimeError) << Where() << ": ncnn failed to compute output " << j << " ('"
                                    << outputs_[j].name << "'), error " << rc;
      }
      if (m.elempack != 1) {  // extract() unpacks by default; be safe anyway
        ncnn::Mat unpacked;
        ncnn::convert_packing(m, unpacked, 1, net_->opt);
        m = unpacked;
      }
      if (m.elemsize == 2) {  // fp16 storage on CPUs where extract() does not convert
        ncnn::Mat f32;
        ncnn::cast_float16_to_float32(m, f32, net_->opt);
        m = f32;
      }
      CopyOut(m, j, out_data[j]);
    }
  }

  // Input i's data as an ncnn Mat header (external data, no reference count): FORMAT.md's mapping.
  ncnn::Mat WrapInput(size_t i, const float* data) const {
    const std::vector<int64_t>& s = inputs_[i].shape;
    const int k = static_cast<int>(s.size()) - 1;
    auto dim = [&](int j) { return static_cast<int>(s[1 + j]); };
    void* p = const_cast<float*>(data);  // ncnn's view type is mutable; in-place layers copy first
    if (k == 1) return ncnn::Mat(dim(0), p);
    if (k == 2) return ncnn::Mat(dim(1), dim(0), p);
    if (k == 3) return ncnn::Mat(dim(2), dim(1), dim(0), p);
    return ncnn::Mat(dim(3), dim(2), dim(1), dim(0), p);
  }

  // Copies a (channel-padded) input into the region's own Mat, allocated once on first use. That Mat
  // holds a reference while ncnn runs, so in-place layers copy instead of writing into it.
  const ncnn::Mat& CopyIn(size_t i, const ncnn::Mat& view) {
    ncnn::Mat& m = in_mats_[i];
    if (m.empty()) {
      m.create_like(view);
      if (m.empty()) {
        TVM_FFI_THROW(RuntimeError) << Where() << ": cannot allocate input " << i << " ('"
                                    << inputs_[i].name << "') of shape "
                                    << ShapeStr(inputs_[i].shape);
      }
    }
    const size_t plane = static_cast<size_t>(m.w) * m.h * m.d;  // elements per channel
    const int channels = m.dims >= 3 ? m.c : 1;
    const float* src = static_cast<const float*>(view.data);
    for (int q = 0; q < channels; ++q) {
      std::memcpy(static_cast<float*>(m.data) + q * m.cstep, src + q * plane, plane * sizeof(float));
    }
    return m;
  }

  void CopyOut(const ncnn::Mat& m, size_t j, float* dst) {
    const std::vector<int64_t>& s = outputs_[j].shape;
    const int k = static_cast<int>(s.size()) - 1;
    auto dim = [&](int d) { return s[1 + d]; };
    bool ok = m.dims == k && m.elemsize == 4u && m.elempack == 1;
    if (ok && k == 1) ok = m.w == dim(0);
    if (ok && k == 2) ok = m.h == dim(0) && m.w == dim(1);
    if (ok && k == 3) ok = m.c == dim(0) && m.h == dim(1) && m.w == dim(2);
    if (ok && k == 4) ok = m.c == dim(0) && m.d == dim(1) && m.h == dim(2) && m.w == dim(3);
    if (!ok) {
      std::ostringstream got;
      got << ShapeStr(MatShape(m)) << " (ncnn Mat dims=" << m.dims << " w=" << m.w << " h=" << m.h
          << " d=" << m.d << " c=" << m.c << " elemsize=" << m.elemsize
          << " elempack=" << m.elempack << ")";
      TVM_FFI_THROW(ValueError) << Where() << ": output " << j << " ('" << outputs_[j].name
                                << "') shape mismatch: expected " << ShapeStr(s) << ", ncnn "
                                << "produced " << got.str();
    }
    const size_t plane = static_cast<size_t>(m.w) * m.h * m.d;
    const int channels = m.dims >= 3 ? m.c : 1;
    for (int q = 0; q < channels; ++q) {
      std::memcpy(dst + q * plane, static_cast<const float*>(m.data) + q * m.cstep,
                  plane * sizeof(float));
    }
  }

  ffi::String RegionInfo() const {
    std::lock_guard<std::mutex> lock(mu_);
    auto blobs = [](const std::vector<BlobSpec>& list) {
      ffi::Array<ffi::Any> arr;
      for (const BlobSpec& b : list) {
        ffi::Array<ffi::Any> shape;
        for (int64_t d : b.shape) shape.push_back(d);
        ffi::Map<ffi::Any, ffi::Any> o;
        o.Set(ffi::String("name"), ffi::String(b.name));
        o.Set(ffi::String("shape"), shape);
        arr.push_back(o);
      }
      return arr;
    };
    ffi::Map<ffi::Any, ffi::Any> info;
    info.Set(ffi::String("symbol"), ffi::String(symbol_));
    info.Set(ffi::String("param"), ffi::String(param_));
    info.Set(ffi::String("inputs"), blobs(inputs_));
    info.Set(ffi::String("outputs"), blobs(outputs_));
    return ffi::json::Stringify(info);
  }

  const std::string symbol_;
  const std::string param_;
  ffi::Bytes weights_blob_;
  size_t weights_offset_, weights_size_;
  std::vector<BlobSpec> inputs_, outputs_;
  const bool keep_weights_;
  bool weights_dropped_ = false;

  mutable std::mutex mu_;
  // Reference count shared by the zero-copy input views (Run): starts far above anything the views
  // can take off it, so it never drops to zero and ncnn never frees the memory they point to. Declared
  // before the Mats so that it outlives any of them holding a view.
  int view_refs_ = 1 << 30;
  int threads_ = 0;  // 0: ncnn::get_big_cpu_count()
  bool fp16_ = false;
  std::unique_ptr<ncnn::Net> net_;
  std::vector<ncnn::Mat> in_mats_;
};

std::vector<BlobSpec> ToSpecs(const std::string& symbol, const char* role,
                              const ffi::Array<ffi::String>& names,
                              const ffi::Array<ffi::Array<int64_t>>& shapes) {
  if (names.size() != shapes.size()) {
    TVM_FFI_THROW(ValueError) << "ncnn region '" << symbol << "': " << names.size() << " " << role
                              << " names but " << shapes.size() << " " << role << " shapes";
  }
  std::vector<BlobSpec> out(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    out[i].name = std::string(names[i]);
    for (int64_t d : shapes[i]) out[i].shape.push_back(d);
  }
  return out;
}

ffi::Module CreateNcnnModule(const ffi::String& symbol, const ffi::String& param,
                             const ffi::Bytes& weights, const ffi::Array<ffi::String>& inputs,
                             const ffi::Array<ffi::Array<int64_t>>& input_shapes,
                             const ffi::Array<ffi::String>& outputs,
                             const ffi::Array<ffi::Array<int64_t>>& output_shapes) {
  std::string sym(symbol);
  std::vector<BlobSpec> in = ToSpecs(sym, "input", inputs, input_shapes);
  std::vector<BlobSpec> out = ToSpecs(sym, "output", outputs, output_shapes);
  return ffi::Module(ffi::make_object<NcnnModuleObj>(sym, std::string(param), weights, 0,
                                                     weights.size(), std::move(in),
                                                     std::move(out),
                                                     /*keep_weights_after_build=*/true));
}

}  // namespace
}  // namespace tvm_ncnn

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("tvm_ncnn.ncnn_module_create", tvm_ncnn::CreateNcnnModule)
      .def("ffi.Module.load_from_bytes.ncnn", tvm_ncnn::NcnnModuleObj::LoadFromBytes);
}
