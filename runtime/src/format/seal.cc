// The seal of a model.so (runtime/FORMAT.md, "Seal"): 24 bytes after the ELF image -- magic, the length they
// cover, and the Checksum64 of those bytes. The modules tvm-ncnn writes carry their own checksums, but TVM's part
// of the file (its compiled code, the Relax VM bytecode and TVM's framing of the modules) is not checked by TVM,
// and a corrupted byte there can crash the VM. The seal covers every byte, and is checked before dlopen.
// dlopen ignores bytes after the ELF image; a file without a seal (exported before it existed) still loads.
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <sys/stat.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "format/byte_io.h"
#include "format/seal.h"
#include "internal.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

constexpr char kSealMagic[8] = {'T', 'V', 'M', 'N', 'C', 'S', 'E', 'L'};
constexpr int64_t kSealSize = 24;

uint64_t GetLE64(const unsigned char* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

// Checksum64 of the first `length` bytes of the file, read in chunks (the file may be large).
uint64_t ChecksumOfPrefix(std::ifstream& f, uint64_t length, const std::string& name) {
  detail::Checksum64 sum;
  std::vector<char> buf(1 << 20);
  f.seekg(0);
  while (length > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(length, buf.size()));
    if (!f.read(buf.data(), static_cast<std::streamsize>(n))) throw Error(name + ": read error while checking it");
    sum.Update(buf.data(), n);
    length -= n;
  }
  return sum.Final();
}

enum class SealState { kNone, kValid };

// kNone when the file has no seal, kValid when it has one that matches; throws when it has one that does not,
// or the start of one cut off. The seal is looked for at the end of the file first, not where the ELF headers
// say the image ends: with a corrupted ELF header, that could point anywhere.
SealState CheckSeal(const std::string& path, int64_t size, int64_t elf_end, const std::string& name) {
  std::ifstream f(path, std::ios::binary);
  unsigned char buf[kSealSize];
  auto read_at = [&](int64_t at, size_t n) {
    f.clear();
    f.seekg(at);
    if (!f.read(reinterpret_cast<char*>(buf), static_cast<std::streamsize>(n))) {
      throw Error(name + ": cannot read the file");
    }
  };
  if (size >= kSealSize) {
    read_at(size - kSealSize, kSealSize);
    if (std::memcmp(buf, kSealMagic, sizeof(kSealMagic)) == 0) {
      const uint64_t covered = GetLE64(buf + 8), stored = GetLE64(buf + 16);
      if (covered != static_cast<uint64_t>(size - kSealSize)) {
        throw Error(name + ": corrupt: its seal covers " + std::to_string(covered) + " bytes, the file has " +
                    std::to_string(size - kSealSize) + " before it; copy it again or re-export it");
      }
      if (ChecksumOfPrefix(f, covered, name) != stored) {
        throw Error(name + ": checksum mismatch: the file changed after export (corrupt or modified); copy it "
                    "again or re-export it");
      }
      return SealState::kValid;
    }
  }
  // No seal at the end. The start of one right after the ELF image means the file was cut.
  if (size > elf_end) {
    const int64_t trailing = size - elf_end;
    const size_t head = static_cast<size_t>(std::min<int64_t>(trailing, sizeof(kSealMagic)));
    read_at(elf_end, head);
    if (std::memcmp(buf, kSealMagic, head) == 0) {
      throw Error(name + ": truncated: it ends with " + std::to_string(trailing) + " bytes of its " +
                  std::to_string(kSealSize) + "-byte seal; copy it again or re-export it");
    }
  }
  return SealState::kNone;  // exported before seals, or other data after the image: not ours to judge
}

}  // namespace

bool VerifySeal(const std::string& path, int64_t size, int64_t elf_end) {
  return CheckSeal(path, size, elf_end, "model '" + path + "'") == SealState::kValid;
}

void SealModel(const std::string& path) {
  const std::string name = "model '" + path + "'";
  const int64_t size = CheckReadableFile(path, "model");
  const int64_t elf_end = CheckElf(path, size, /*for_this_machine=*/false);  // exports may be cross-compiled
  if (CheckSeal(path, size, elf_end, name) == SealState::kValid) return;  // sealing twice changes nothing
  if (size != elf_end) {
    throw Error(name + ": has " + std::to_string(size - elf_end) + " bytes after its ELF image; not sealing it");
  }
  uint64_t sum;
  {
    std::ifstream f(path, std::ios::binary);
    sum = ChecksumOfPrefix(f, static_cast<uint64_t>(size), name);
  }
  detail::ByteWriter w;
  w.Raw(kSealMagic, sizeof(kSealMagic));
  w.U64(static_cast<uint64_t>(size));
  w.U64(sum);
  const std::string seal = w.Take();
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out.write(seal.data(), static_cast<std::streamsize>(seal.size()));
  out.close();
  if (!out) throw Error(name + ": cannot append the seal (" + std::strerror(errno) + ")");
}

namespace {
std::mutex sealed_mu;
std::map<std::string, std::string>& SealedFiles() {  // path -> FileIdentity when its seal was checked
  static auto* files = new std::map<std::string, std::string>();  // never destroyed: used until exit
  return *files;
}
// Device, inode, size and modification time: a file replaced or rewritten since its seal was checked differs.
std::string FileIdentity(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}
}  // namespace

void NoteSealVerified(const std::string& abs_path) {
  const std::string id = FileIdentity(abs_path);
  std::lock_guard<std::mutex> lock(sealed_mu);
  if (!id.empty()) SealedFiles()[abs_path] = id;
}

bool SealVerified(const std::string& abs_path) {
  const std::string id = FileIdentity(abs_path);
  std::lock_guard<std::mutex> lock(sealed_mu);
  auto it = SealedFiles().find(abs_path);
  return !id.empty() && it != SealedFiles().end() && it->second == id;
}

}  // namespace tvm_ncnn

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef().def("tvm_ncnn.seal_model", [](const tvm::ffi::String& path) {
    try {
      tvm_ncnn::SealModel(std::string(path));
    } catch (const tvm_ncnn::Error& e) {
      TVM_FFI_THROW(RuntimeError) << e.what();
    }
  });
}
