// The ELF check of model.so, before dlopen: a clear message for a file that is not a library, is built for
// another CPU, or is cut short (dlopen maps a truncated file without complaint, and the process then dies of
// SIGBUS on first touch).
#include <fstream>
#include <string>

#include "format/seal.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

const char* MachineName(int machine) {
  switch (machine) {
    case 3: return "x86";
    case 40: return "arm";
    case 62: return "x86_64";
    case 183: return "aarch64";
    case 243: return "riscv";
    default: return nullptr;
  }
}

int HostMachine() {
#if defined(__x86_64__)
  return 62;
#elif defined(__aarch64__)
  return 183;
#elif defined(__arm__)
  return 40;
#elif defined(__i386__)
  return 3;
#elif defined(__riscv)
  return 243;
#else
  return -1;
#endif
}

uint64_t ReadLE(const std::string& b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

}  // namespace

// Also checks that the file holds every loadable segment. for_this_machine: also refuse a library built for
// another CPU (off when sealing a cross-compiled export).
int64_t CheckElf(const std::string& path, int64_t file_size, bool for_this_machine) {
  const std::string name = "model '" + path + "': ";
  std::ifstream f(path, std::ios::binary);
  std::string h(64, '\0');
  f.read(&h[0], 64);
  if (f.gcount() < 52 || h.compare(0, 4, "\x7f" "ELF") != 0) {
    throw Error(name + "not a model.so (not an ELF shared library)");
  }
  const bool is64 = h[4] == 2;
  if (h[5] != 1) throw Error(name + "not a little-endian ELF file");
  if (ReadLE(h, 16, 2) != 3) throw Error(name + "not a model.so (an ELF file, but not a shared library)");
  const int machine = static_cast<int>(ReadLE(h, 18, 2)), host = HostMachine();
  if (for_this_machine && host >= 0 && machine != host) {
    const char* m = MachineName(machine);
    throw Error(name + "built for " + (m ? m : "ELF machine " + std::to_string(machine)) + ", but this machine is " +
                MachineName(host) + "; export it for this target");
  }
  const uint64_t phoff = is64 ? ReadLE(h, 32, 8) : ReadLE(h, 28, 4);
  const uint64_t phentsize = ReadLE(h, is64 ? 54 : 42, 2), phnum = ReadLE(h, is64 ? 56 : 44, 2);
  const uint64_t size = static_cast<uint64_t>(file_size);
  uint64_t need = phoff + phentsize * phnum;
  if (phentsize < (is64 ? 56u : 32u) || need > size) {
    throw Error(name + "truncated or corrupt (its ELF program headers lie outside the file)");
  }
  std::string ph(phentsize * phnum, '\0');
  f.seekg(static_cast<std::streamoff>(phoff));
  f.read(&ph[0], static_cast<std::streamsize>(ph.size()));
  for (uint64_t i = 0; i < phnum; ++i) {
    const size_t at = i * phentsize;
    if (ReadLE(ph, at, 4) != 1) continue;  // PT_LOAD only
    const uint64_t offset = is64 ? ReadLE(ph, at + 8, 8) : ReadLE(ph, at + 4, 4);
    const uint64_t filesz = is64 ? ReadLE(ph, at + 32, 8) : ReadLE(ph, at + 16, 4);
    if (offset + filesz > need) need = offset + filesz;
  }
  // The section header table sits at the end of the file: a file cut anywhere fails this.
  const uint64_t shoff = is64 ? ReadLE(h, 40, 8) : ReadLE(h, 32, 4);
  const uint64_t shend = shoff + ReadLE(h, is64 ? 58 : 46, 2) * ReadLE(h, is64 ? 60 : 48, 2);
  if (shoff != 0 && shend > need) need = shend;
  if (need > size) {
    throw Error(name + "truncated: the file has " + std::to_string(size) + " bytes, its ELF headers describe " +
                std::to_string(need) + "; copy it again");
  }
  return static_cast<int64_t>(need);
}

}  // namespace tvm_ncnn
