// The "ncnn" runtime module (runtime/FORMAT.md, "ncnn module"): one offloaded region as TVM sees it. Its shell --
// its bytes, what it accepts (blobs, the DPS call's tensors), its functions; ncnn/region.h builds and runs the net.
//
// Life cycle
//   created  by tvm_ncnn.ncnn_module_create at export (keeps param + weights: SaveToBytes needs them; export
//            writes version 3, below, through sdk_python/tvm_ncnn/exporter/weights_section.py), or by
//            ffi.Module.load_from_bytes.ncnn at load (older files' weights kept, no copy, until the net is built).
//   built    once, on the first tvm_ncnn.configure or the first call of <symbol>.
//   called   <symbol>(in..., out...) by the Relax VM (call_dps_packed), from any number of threads at once
//            (Model's execution contexts): once built, the net is only read (ncnn/region.h).
#include <tvm/ffi/cast.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ffi_util.h"
#include "format/module_header.h"
#include "ncnn/mapped_weights.h"
#include "ncnn/region.h"

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;

// Version 3: the weights are not in the module's bytes but in a symbol of model.so's read-only data, read in
// place (ncnn/mapped_weights.h); modules without weights, and those of older files, are version 2 or 1.
constexpr uint32_t kExternalWeightsVersion = 3;
constexpr detail::ModuleFormat kFormat = {"ncnn module", {'T', 'V', 'M', 'N', 'C', 'N', 'N', '\0'},
                                          "\"TVMNCNN\\0\"", kExternalWeightsVersion};

// Caps that keep malformed bytes from asking for absurd amounts of memory.
constexpr uint64_t kMaxSymbolLen = 4096;
constexpr uint64_t kMaxParamLen = uint64_t(1) << 30;
constexpr uint64_t kMaxWeightsLen = uint64_t(1) << 40;

std::string Where(const std::string& symbol) { return "ncnn region '" + symbol + "'"; }

std::vector<BlobSpec> ReadBlobs(detail::ByteReader* r, const char* role) {
  const std::string what = std::string("number of ") + role + "s";
  const uint32_t n = r->U32(what.c_str());
  if (n > kMaxTensors) {
    TVM_FFI_THROW(ValueError) << r->context() << ": " << n << " " << role << "s is more than the limit of "
                              << kMaxTensors << " (corrupt data)";
  }
  std::vector<BlobSpec> out(n);
  for (uint32_t i = 0; i < n; ++i) {
    const std::string field = std::string(role) + " " + std::to_string(i);
    out[i].name = r->Str((field + " blob name").c_str(), kMaxBlobNameLen);
    const uint32_t ndim = r->U32((field + " ndim").c_str());
    if (ndim < kMinNdim || ndim > kMaxNdim) {
      TVM_FFI_THROW(ValueError) << r->context() << ": " << field << " ('" << out[i].name << "') has ndim " << ndim
                                << ", expected " << kMinNdim << ".." << kMaxNdim;
    }
    out[i].shape.resize(ndim);
    for (uint32_t k = 0; k < ndim; ++k) out[i].shape[k] = r->I64((field + " dims").c_str());
  }
  return out;
}

void WriteBlobs(detail::ByteWriter* w, const std::vector<BlobSpec>& list) {
  w->U32(static_cast<uint32_t>(list.size()));
  for (const BlobSpec& b : list) {
    w->Str(b.name);
    w->U32(static_cast<uint32_t>(b.shape.size()));
    for (int64_t d : b.shape) w->I64(d);
  }
}

class NcnnModuleObj : public ffi::ModuleObj {
 public:
  // The weights are bytes [weights_offset, weights_offset + weights_size) of `weights_blob`, which is held
  // (not copied) until the net is built.
  NcnnModuleObj(std::string symbol, std::string param, ffi::Bytes weights_blob, size_t weights_offset,
                size_t weights_size, std::vector<BlobSpec> inputs, std::vector<BlobSpec> outputs,
                bool keep_weights_after_build)
      : symbol_(std::move(symbol)),
        param_(std::move(param)),
        weights_blob_(std::move(weights_blob)),
        weights_offset_(weights_offset),
        weights_size_(weights_size),
        keep_weights_(keep_weights_after_build),
        region_(Where(symbol_), std::move(inputs), std::move(outputs)) {
    if (weights_offset_ > weights_blob_.size() || weights_size_ > weights_blob_.size() - weights_offset_) {
      TVM_FFI_THROW(InternalError) << Where(symbol_) << ": weights out of range";
    }
    if (symbol_.empty()) TVM_FFI_THROW(ValueError) << "ncnn module: empty symbol";
    if (param_.find('\0') != std::string::npos) {
      TVM_FFI_THROW(ValueError) << Where(symbol_) << ": the param text contains a NUL byte";
    }
    ValidateBlobs(Where(symbol_), region_.inputs(), region_.outputs());
  }

  const char* kind() const final { return "ncnn"; }
  int GetPropertyMask() const final { return ffi::Module::kBinarySerializable | ffi::Module::kRunnable; }

  ffi::Optional<ffi::Function> GetFunction(const ffi::String& name) final {
    ffi::ObjectPtr<ffi::Object> self = ffi::GetObjectPtr<ffi::Object>(this);
    if (name == symbol_) {
      return ffi::Function([self, this](ffi::PackedArgs args, ffi::Any* rv) { Run(args); });
    }
    if (name == "tvm_ncnn.configure") {
      return ffi::Function::FromTyped([self, this](int64_t threads, bool fp16) { Configure(threads, fp16); });
    }
    if (name == "tvm_ncnn.external_weights") {
      return ffi::Function::FromTyped([self, this]() { return ExternalWeights(); });
    }
    return std::nullopt;
  }

  // The region's ncnn graph, as ncnn reads it (.param text), whatever format is asked for.
  ffi::String InspectSource(const ffi::String& format) const final { return ffi::String(param_); }

  ffi::Bytes SaveToBytes() const final {
    std::lock_guard<std::mutex> lock(mu_);
    if (weights_dropped_) {
      TVM_FFI_THROW(RuntimeError) << Where(symbol_) << ": cannot serialize: the weight bytes were released after "
                                  << "the ncnn net was built (a module loaded from model.so is run-only; "
                                  << "re-export from the SDK)";
    }
    const bool external = !weights_symbol_.empty();
    detail::ByteWriter w;
    w.Reserve(64 + symbol_.size() + param_.size() + (external ? weights_symbol_.size() : weights_size_));
    detail::WriteModuleHeader(&w, kFormat, external ? kExternalWeightsVersion : detail::kModuleFormatVersion);
    w.Str(symbol_);
    w.Str(param_);
    if (external) {
      w.Str(weights_symbol_);
      w.U64(weights_size_);
      w.U64(weights_checksum_);
    } else {
      w.Str(std::string_view(weights_blob_.data() + weights_offset_, weights_size_));
    }
    WriteBlobs(&w, region_.inputs());
    WriteBlobs(&w, region_.outputs());
    detail::WriteModuleTrailer(&w);
    return ffi::Bytes(w.Take());
  }

  static ffi::Module LoadFromBytes(const ffi::Bytes& bytes) {
    detail::ByteReader r(bytes.data(), bytes.size(), kFormat.where);
    const uint32_t version = detail::ReadModuleHeader(&r, kFormat);
    std::string symbol = r.Str("symbol", kMaxSymbolLen);
    r.set_context(Where(symbol));
    std::string param = r.Str("param text", kMaxParamLen);
    size_t weights_size = 0, weights_offset = 0;
    std::string weights_symbol;
    uint64_t weights_checksum = 0;
    if (version >= kExternalWeightsVersion) {  // a reference to the weights symbol; the bytes are not here
      weights_symbol = r.Str("weights symbol", kMaxSymbolLen);
      const uint64_t n = r.U64("weights size");
      if (weights_symbol.empty() || n == 0 || n > kMaxWeightsLen) {
        TVM_FFI_THROW(ValueError) << r.context() << ": invalid weights reference ('" << weights_symbol << "', " << n
                                  << " bytes)";
      }
      weights_size = static_cast<size_t>(n);
      weights_checksum = r.U64("weights checksum");
    } else {
      weights_offset = r.StrSpan("weights", kMaxWeightsLen, &weights_size);
    }
    std::vector<BlobSpec> inputs = ReadBlobs(&r, "input");
    std::vector<BlobSpec> outputs = ReadBlobs(&r, "output");
    r.ExpectEnd();
    // A module with external weights keeps none of the loader's bytes (they are only the graph and the names).
    auto obj = ffi::make_object<NcnnModuleObj>(std::move(symbol), std::move(param),
                                               weights_symbol.empty() ? bytes : ffi::Bytes(), weights_offset,
                                               weights_symbol.empty() ? weights_size : 0, std::move(inputs),
                                               std::move(outputs), /*keep_weights_after_build=*/false);
    if (!weights_symbol.empty()) obj->SetExternalWeights(std::move(weights_symbol), weights_size, weights_checksum);
    return ffi::Module(obj);
  }

 private:
  void Configure(int64_t threads, bool fp16) {
    std::lock_guard<std::mutex> lock(mu_);
    if (threads < 0 || threads > kMaxThreads) {
      TVM_FFI_THROW(ValueError) << Where(symbol_) << ": configure: invalid thread count " << threads
                                << " (0 = the big cores of this machine)";
    }
    region_.Configure(static_cast<int>(threads), fp16);
    BuildLocked();
  }

  // From a loaded v3 module: the weights are the symbol `name` of model.so (read when the net is built).
  void SetExternalWeights(std::string name, size_t size, uint64_t checksum) {
    weights_symbol_ = std::move(name);
    weights_size_ = size;
    weights_checksum_ = checksum;
    weights_in_library_ = true;
  }

  // At export: from now on SaveToBytes writes a reference to a symbol holding the weights instead of the bytes
  // (version 3), and returns [symbol name, weights] for the exporter to link into model.so. Modules without
  // weights stay version 2: returns ["", b""].
  ffi::Array<ffi::Any> ExternalWeights() {
    std::lock_guard<std::mutex> lock(mu_);
    if (weights_in_library_ || weights_dropped_) {
      TVM_FFI_THROW(RuntimeError) << Where(symbol_) << ": a module loaded from model.so cannot be exported again";
    }
    if (weights_size_ == 0) return {ffi::String(""), ffi::Bytes()};
    const char* data = weights_blob_.data() + weights_offset_;
    weights_checksum_ = detail::Checksum64::Of(data, weights_size_);
    // Named by content as well as region: two model.so files loaded in one process never share a name unless
    // they share the bytes.
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(weights_checksum_));
    std::string name = "__tvm_ncnn_weights_" + std::string(hex) + "_";
    for (char c : symbol_) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    weights_symbol_ = name;
    return {ffi::String(name), ffi::Bytes(data, weights_size_)};
  }

  void BuildLocked() {
    if (region_.built()) return;
    if (weights_in_library_) {
      mapped_ = std::make_unique<MappedWeights>(Where(symbol_), weights_symbol_, weights_size_, weights_checksum_);
      region_.Build(param_, mapped_->data(), mapped_->size(), mapped_.get());
    } else {
      region_.Build(param_, reinterpret_cast<const unsigned char*>(weights_blob_.data()) + weights_offset_,
                    weights_size_);
    }
    if (!keep_weights_ && !weights_in_library_) {
      weights_blob_ = ffi::Bytes();
      weights_offset_ = weights_size_ = 0;
      weights_dropped_ = true;
    }
    built_.store(true, std::memory_order_release);
  }

  // Checks an argument of the DPS call against the recorded blob; returns its data pointer.
  float* CheckTensor(const ffi::AnyView& arg, size_t arg_index, const char* role, size_t i,
                     const BlobSpec& spec) const {
    std::optional<DLTensor*> maybe = arg.try_cast<DLTensor*>();
    if (!maybe.has_value() || *maybe == nullptr) {
      TVM_FFI_THROW(ValueError) << Where(symbol_) << ": argument " << arg_index << " (" << role << " " << i
                                << ", '" << spec.name << "') is a " << arg.GetTypeKey() << ", expected a tensor";
    }
    const DLTensor* t = *maybe;
    // Runs for every tensor of every call: the message text is built only when there is something to say.
    auto what = [&] { return Where(symbol_) + ": " + role + " " + std::to_string(i) + " ('" + spec.name + "')"; };
    if (t->device.device_type != kDLCPU) {
      TVM_FFI_THROW(ValueError) << what() << " is on device type " << int(t->device.device_type)
                                << ", expected the CPU";
    }
    if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1) {
      TVM_FFI_THROW(ValueError) << what() << " dtype mismatch: expected float32, got " << DTypeName(t->dtype);
    }
    const size_t ndim = static_cast<size_t>(std::max(t->ndim, 0));
    auto same = [](int64_t got, int64_t want) { return got == want || (want == kDynamicDim && got >= 1); };
    if (ndim != spec.shape.size() || !std::equal(t->shape, t->shape + ndim, spec.shape.begin(), same)) {
      TVM_FFI_THROW(ValueError) << what() << " shape mismatch: expected " << ShapeString(spec.shape) << ", got "
                                << ShapeString(std::vector<int64_t>(t->shape, t->shape + ndim));
    }
    if (t->strides != nullptr) {
      int64_t expect = 1;
      for (int d = t->ndim - 1; d >= 0; --d) {
        if (t->shape[d] != 1 && t->strides[d] != expect) TVM_FFI_THROW(ValueError) << what() << " is not contiguous";
        expect *= t->shape[d];
      }
    }
    if (t->data == nullptr) TVM_FFI_THROW(ValueError) << what() << " has no data";
    return reinterpret_cast<float*>(static_cast<char*>(t->data) + t->byte_offset);
  }

  void Run(ffi::PackedArgs args) {
    const size_t n_in = region_.inputs().size(), n_out = region_.outputs().size();
    // A model with dynamic sizes also passes the sizes (shape arguments TVM adds for the region's output
    // shapes, FORMAT.md): ncnn computes every shape itself, so they are skipped.
    const bool with_shapes = args.size() != static_cast<int>(n_in + n_out);
    size_t n = 0;
    for (int a = 0; a < args.size(); ++a) n += !with_shapes || args[a].type_index() != ffi::TypeIndex::kTVMFFIShape;
    if (n != n_in + n_out) {
      TVM_FFI_THROW(ValueError) << Where(symbol_) << ": expects " << n_in << " inputs and " << n_out
                                << " outputs (" << (n_in + n_out) << " tensors), got " << args.size()
                                << " arguments";
    }
    // Every argument checked before anything runs. On the stack up to kStackBuffers: a call allocates nothing.
    constexpr size_t kStackBuffers = 16;
    NcnnRegion::Buffer on_stack[kStackBuffers];
    std::vector<NcnnRegion::Buffer> on_heap(n > kStackBuffers ? n : 0);
    NcnnRegion::Buffer* buffers = n > kStackBuffers ? on_heap.data() : on_stack;
    size_t k = 0;
    for (int a = 0; a < args.size(); ++a) {
      if (with_shapes && args[a].type_index() == ffi::TypeIndex::kTVMFFIShape) continue;
      const bool input = k < n_in;
      const size_t i = input ? k : k - n_in;
      const BlobSpec& spec = input ? region_.inputs()[i] : region_.outputs()[i];
      buffers[k++] = {CheckTensor(args[a], a, input ? "input" : "output", i, spec), args[a].cast<DLTensor*>()->shape};
    }
    if (!built_.load(std::memory_order_acquire)) {  // the mutex only until the net exists
      std::lock_guard<std::mutex> lock(mu_);
      BuildLocked();
    }
    region_.Run(buffers);
  }

  const std::string symbol_;
  const std::string param_;
  ffi::Bytes weights_blob_;
  size_t weights_offset_, weights_size_;
  const bool keep_weights_;
  bool weights_dropped_ = false;
  std::string weights_symbol_;      // set: SaveToBytes writes version 3, a reference to this symbol
  uint64_t weights_checksum_ = 0;   // Checksum64 of the weights (version 3)
  bool weights_in_library_ = false;  // loaded from version 3: the weights are read from weights_symbol_
  mutable std::mutex mu_;          // configure, build, serialization; not held while running
  std::atomic<bool> built_{false};  // set once the net is built: from then on calls run without mu_
  // Declared before the region: the net's layers may point into the mapping, which must outlive them.
  std::unique_ptr<MappedWeights> mapped_;
  NcnnRegion region_;
};

std::vector<BlobSpec> ToSpecs(const std::string& symbol, const char* role, const ffi::Array<ffi::String>& names,
                              const ffi::Array<ffi::Array<int64_t>>& shapes) {
  if (names.size() != shapes.size()) {
    TVM_FFI_THROW(ValueError) << Where(symbol) << ": " << names.size() << " " << role << " names but "
                              << shapes.size() << " " << role << " shapes";
  }
  std::vector<BlobSpec> out(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    out[i].name = std::string(names[i]);
    for (int64_t d : shapes[i]) out[i].shape.push_back(d);
  }
  return out;
}

ffi::Module CreateNcnnModule(const ffi::String& symbol, const ffi::String& param, const ffi::Bytes& weights,
                             const ffi::Array<ffi::String>& inputs,
                             const ffi::Array<ffi::Array<int64_t>>& input_shapes,
                             const ffi::Array<ffi::String>& outputs,
                             const ffi::Array<ffi::Array<int64_t>>& output_shapes) {
  const std::string sym(symbol);
  std::vector<BlobSpec> in = ToSpecs(sym, "input", inputs, input_shapes);
  std::vector<BlobSpec> out = ToSpecs(sym, "output", outputs, output_shapes);
  return ffi::Module(ffi::make_object<NcnnModuleObj>(sym, std::string(param), weights, 0, weights.size(),
                                                     std::move(in), std::move(out),
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
