// The framing both tvm-ncnn module kinds share (runtime/FORMAT.md): 8 bytes of magic, a u32 module format
// version, the kind's own fields, then (from version 2) a u64 Checksum64 of every byte before it.
// Version 1 had no checksum and is still read, so models exported before it keep loading.
#pragma once

#include <tvm/ffi/error.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "format/byte_io.h"

namespace tvm_ncnn {
namespace detail {

constexpr uint32_t kModuleFormatVersion = 2;        // what this runtime writes unless a kind needs more
constexpr uint32_t kOldestModuleFormatVersion = 1;  // the oldest it reads

struct ModuleFormat {
  const char* where;       // names the module kind in errors: "ncnn module"
  char magic[8];
  const char* magic_text;  // the magic as messages show it: "\"TVMNCNNM\""
  uint32_t newest = kModuleFormatVersion;  // the newest version of this kind the runtime reads
};

inline void WriteModuleHeader(ByteWriter* w, const ModuleFormat& format, uint32_t version = kModuleFormatVersion) {
  w->Raw(format.magic, sizeof(format.magic));
  w->U32(version);
}

// Closes what WriteModuleHeader opened.
inline void WriteModuleTrailer(ByteWriter* w) { w->ChecksumTrailer(); }

// Checks the magic and the version, and the checksum before any field is read: afterwards the reader holds
// only the fields, known to be intact. Returns the version.
inline uint32_t ReadModuleHeader(ByteReader* r, const ModuleFormat& format) {
  const std::string magic = r->Fixed(sizeof(format.magic), "magic");
  if (std::memcmp(magic.data(), format.magic, sizeof(format.magic)) != 0) {
    TVM_FFI_THROW(ValueError) << format.where << ": bad magic (expected " << format.magic_text
                              << "): not a " << format.where << ", or corrupt data";
  }
  const uint32_t version = r->U32("module format version");
  if (version < kOldestModuleFormatVersion || version > format.newest) {
    TVM_FFI_THROW(ValueError) << format.where << ": unknown module format version " << version
                              << " (this runtime reads versions " << kOldestModuleFormatVersion << " to "
                              << format.newest << "); re-export the model with the SDK that matches "
                              << "this runtime, or use the runtime built with it";
  }
  if (version >= 2) r->VerifyChecksumTrailer();
  return version;
}

}  // namespace detail
}  // namespace tvm_ncnn
