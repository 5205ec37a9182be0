// The "tvm_ncnn_meta" runtime module: the JSON document that describes a model.so (inputs, outputs,
// preprocessing, labels, versions). Contract: runtime/FORMAT.md ("tvm_ncnn_meta module").
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
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>

#include "format/module_header.h"
#include "meta/metadata.h"

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;

constexpr detail::ModuleFormat kFormat = {"tvm_ncnn_meta module", {'T', 'V', 'M', 'N', 'C', 'N', 'N', 'M'},
                                          "\"TVMNCNNM\""};
constexpr uint64_t kMaxJsonLen = uint64_t(256) << 20;

// The JSON must be an object; a "format_version" in it must be one this runtime reads.
void CheckJson(const std::string& json) {
  ffi::String error;
  ffi::json::Value value = ffi::json::Parse(json, &error);
  if (!error.empty()) {
    TVM_FFI_THROW(ValueError) << kFormat.where << ": the metadata is not valid JSON: " << std::string(error);
  }
  std::optional<ffi::Map<ffi::Any, ffi::Any>> obj = value.try_cast<ffi::Map<ffi::Any, ffi::Any>>();
  if (!obj.has_value()) TVM_FFI_THROW(ValueError) << kFormat.where << ": the metadata JSON is not an object";
  auto it = obj->find(ffi::String("format_version"));
  if (it != obj->end()) {
    std::optional<int64_t> v = (*it).second.try_cast<int64_t>();
    if (!v.has_value() || *v < kOldestMetadataFormatVersion || *v > kMetadataFormatVersion) {
      TVM_FFI_THROW(ValueError) << kFormat.where << ": unknown metadata format version "
                                << (v.has_value() ? std::to_string(*v) : std::string("(not an int)"))
                                << " in the JSON (this runtime reads versions " << kOldestMetadataFormatVersion
                                << " to " << kMetadataFormatVersion << ")";
    }
  }
}

// The JSON of the serialized module [data, data + size).
std::string ReadMetaModule(const char* data, size_t size) {
  detail::ByteReader r(data, size, kFormat.where);
  detail::ReadModuleHeader(&r, kFormat);
  std::string json = r.Str("metadata JSON", kMaxJsonLen);
  r.ExpectEnd();
  CheckJson(json);
  return json;
}

// The length of the serialized module that starts at `data` (and is followed by other bytes), from its own
// header, or 0 when none starts there.
size_t MetaModuleLength(const char* data, size_t size) {
  detail::ByteReader r(data, size, kFormat.where);
  r.Fixed(sizeof(kFormat.magic), "magic");
  const uint32_t version = r.U32("module format version");
  const uint64_t json_len = r.U64("metadata JSON");
  const uint64_t trailer = version >= 2 ? 8 : 0;
  if (json_len > kMaxJsonLen || json_len + trailer > r.remaining()) return 0;
  return r.position() + static_cast<size_t>(json_len + trailer);
}

class MetaModuleObj : public ffi::ModuleObj {
 public:
  explicit MetaModuleObj(std::string json) : json_(std::move(json)) {}

  const char* kind() const final { return "tvm_ncnn_meta"; }
  int GetPropertyMask() const final { return ffi::Module::kBinarySerializable | ffi::Module::kRunnable; }

  ffi::Optional<ffi::Function> GetFunction(const ffi::String& name) final {
    ffi::ObjectPtr<ffi::Object> self = ffi::GetObjectPtr<ffi::Object>(this);
    if (name == "tvm_ncnn.metadata") {
      return ffi::Function::FromTyped([self, this]() { return ffi::String(json_); });
    }
    return std::nullopt;
  }

  ffi::String InspectSource(const ffi::String& format) const final { return ffi::String(json_); }

  ffi::Bytes SaveToBytes() const final {
    detail::ByteWriter w;
    detail::WriteModuleHeader(&w, kFormat);
    w.Str(json_);
    detail::WriteModuleTrailer(&w);
    return ffi::Bytes(w.Take());
  }

  static ffi::Module LoadFromBytes(const ffi::Bytes& bytes) {
    return ffi::Module(ffi::make_object<MetaModuleObj>(ReadMetaModule(bytes.data(), bytes.size())));
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

std::string FindMetadataInFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::string magic(kFormat.magic, sizeof(kFormat.magic));
  for (size_t at = data.find(magic); at != std::string::npos; at = data.find(magic, at + 1)) {
    try {
      const size_t n = MetaModuleLength(data.data() + at, data.size() - at);
      if (n > 0) return ReadMetaModule(data.data() + at, n);
    } catch (const ffi::Error&) {
      // not a module after all, or a damaged one: look further
    }
  }
  return "";
}

}  // namespace tvm_ncnn

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("tvm_ncnn.meta_module_create", tvm_ncnn::CreateMetaModule)
      .def("ffi.Module.load_from_bytes.tvm_ncnn_meta", tvm_ncnn::MetaModuleObj::LoadFromBytes);
}
