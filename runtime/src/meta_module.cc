// The "tvm_ncnn_meta" runtime module: the JSON document that describes a model.so (inputs,
// outputs, preprocessing, labels, versions). Contract: runtime/FORMAT.md ("tvm_ncnn_meta module").
#include <tvm/ffi/any.h>
#include <tvm/ffi/cast.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "byte_io.h"

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;

constexpr char kMagic[8] = {'T', 'V', 'M', 'N', 'C', 'N', 'N', 'M'};
// The module's own format (magic, version, JSON, then from version 2 a checksum trailer); version 1
// is still read. Not to be confused with the JSON's "format_version" (kJsonFormatVersion).
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kOldestFormatVersion = 1;
constexpr int64_t kJsonFormatVersion = 1;
constexpr uint64_t kMaxJsonLen = uint64_t(256) << 20;
constexpr const char* kWhere = "tvm_ncnn_meta module";

// The JSON must be an object; a "format_version" in it must be the one this runtime reads.
void CheckJson(const std::string& json) {
  ffi::String error;
  ffi::json::Value value = ffi::json::Parse(json, &error);
  if (!error.empty()) {
    TVM_FFI_THROW(ValueError) << kWhere << ": the metadata is not valid JSON: "
                              << std::string(error);
  }
  std::optional<ffi::Map<ffi::Any, ffi::Any>> obj = value.try_cast<ffi::Map<ffi::Any, ffi::Any>>();
  if (!obj.has_value()) {
    TVM_FFI_THROW(ValueError) << kWhere << ": the metadata JSON is not an object";
  }
  auto it = obj->find(ffi::String("format_version"));
  if (it != obj->end()) {
    std::optional<int64_t> v = (*it).second.try_cast<int64_t>();
    if (!v.has_value() || *v != kJsonFormatVersion) {
      TVM_FFI_THROW(ValueError) << kWhere << ": unknown metadata format version "
                                << (v.has_value() ? std::to_string(*v) : std::string("(not an int)"))
                                << " in the JSON (this runtime reads version " << kJsonFormatVersion
                                << ")";
    }
  }
}

class MetaModuleObj : public ffi::ModuleObj {
 public:
  explicit MetaModuleObj(std::string json) : json_(std::move(json)) {}

  const char* kind() const final { return "tvm_ncnn_meta"; }
  int GetPropertyMask() const final {
    return ffi::Module::kBinarySerializable | ffi::Module::kRunnable;
  }

  ffi::Optional<ffi::Function> GetFunction(const ffi::String& name) final {
    ffi::ObjectPtr<ffi::Object> self = ffi::GetObjectPtr<ffi::Object>(this);
    if (name == "tvm_ncnn.metadata") {
      return ffi::Function::FromTyped([self, this]() { return ffi::String(json_); });
    }
    return std::nullopt;
  }

  ffi::Bytes SaveToBytes() const final {
    detail::ByteWriter w;
    w.Raw(kMagic, sizeof(kMagic));
    w.U32(kFormatVersion);
    w.Str(json_);
    w.ChecksumTrailer();
    return ffi::Bytes(w.Take());
  }

  static ffi::Module LoadFromBytes(const ffi::Bytes& bytes) {
    detail::ByteReader r(bytes.data(), bytes.size(), kWhere);
    std::string magic = r.Fixed(sizeof(kMagic), "magic");
    if (std::memcmp(magic.data(), kMagic, sizeof(kMagic)) != 0) {
      TVM_FFI_THROW(ValueError) << kWhere << ": bad magic (expected \"TVMNCNNM\"): corrupt data";
    }
    uint32_t version = r.U32("metadata format version");
    if (version < kOldestFormatVersion || version > kFormatVersion) {
      TVM_FFI_THROW(ValueError) << kWhere << ": unknown module format version " << version
                                << " (this runtime reads versions " << kOldestFormatVersion << " to "
                                << kFormatVersion << "); use the tvm-ncnn runtime that matches the SDK "
                                << "that exported the model";
    }
    if (version >= 2) r.VerifyChecksumTrailer();
    std::string json = r.Str("metadata JSON", kMaxJsonLen);
    r.ExpectEnd();
    CheckJson(json);
    return ffi::Module(ffi::make_object<MetaModuleObj>(std::move(json)));
  }

 private:
  const std::string json_;
};

ffi::Module CreateMetaModule(const ffi::String& json) {
  std::string text(json);
  CheckJson(text);
  return ffi::Module(ffi::make_object<MetaModuleObj>(std::move(text)));
}

}  // namespace
}  // namespace tvm_ncnn

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("tvm_ncnn.meta_module_create", tvm_ncnn::CreateMetaModule)
      .def("ffi.Module.load_from_bytes.tvm_ncnn_meta", tvm_ncnn::MetaModuleObj::LoadFromBytes);
}
