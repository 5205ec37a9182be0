// Model::Load refuses everything that is not a loadable tvm-ncnn model.so with one line naming the file:
// no model.so is needed for that, only files written here and a shared library this process already maps.
#include <sys/stat.h>

#include <initializer_list>
#include <iterator>

#include "check.h"

// A minimal 64-bit little-endian ELF header: enough for the runtime's pre-dlopen check.
static std::string ElfHeader(int type, int machine) {
  std::string h(64, '\0');
  h[0] = 0x7f, h[1] = 'E', h[2] = 'L', h[3] = 'F', h[4] = 2, h[5] = 1, h[6] = 1;
  h[16] = static_cast<char>(type), h[18] = static_cast<char>(machine & 0xff), h[19] = static_cast<char>(machine >> 8);
  return h;
}

// Path of a shared library mapped into this process whose name contains `needle` (e.g. "libc.so"), or "".
static std::string MappedLibrary(const std::string& needle) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    size_t slash = line.find('/');
    if (slash != std::string::npos && line.find(needle, slash) != std::string::npos) return line.substr(slash);
  }
  return "";
}

int main() {
  using tvm_ncnn::Model;
  const std::string dir = TempDir();

  CHECK_ERROR(Model::Load(dir + "/missing.so"), "missing.so", "no such file");
  mkdir((dir + "/adir.so").c_str(), 0755);
  CHECK_ERROR(Model::Load(dir + "/adir.so"), "adir.so", "directory");
  WriteFile(dir + "/text.so", "not a library at all\n");
  CHECK_ERROR(Model::Load(dir + "/text.so"), "text.so", "not a model.so");
  WriteFile(dir + "/empty.so", "");
  CHECK_ERROR(Model::Load(dir + "/empty.so"), "empty.so", "not a model.so");
  WriteFile(dir + "/exec.so", ElfHeader(2, 62));
  CHECK_ERROR(Model::Load(dir + "/exec.so"), "exec.so", "not a shared library");
#if defined(__x86_64__)
  WriteFile(dir + "/other_arch.so", ElfHeader(3, 183));
  CHECK_ERROR(Model::Load(dir + "/other_arch.so"), "other_arch.so", "built for aarch64", "x86_64");
#elif defined(__aarch64__)
  WriteFile(dir + "/other_arch.so", ElfHeader(3, 62));
  CHECK_ERROR(Model::Load(dir + "/other_arch.so"), "other_arch.so", "built for x86_64", "aarch64");
#endif
  // Right architecture, but cut short: refused before dlopen (which would map it and die of SIGBUS later).
  WriteFile(dir + "/headers_only.so", ElfHeader(3,
#if defined(__x86_64__)
                                                62
#else
                                                183
#endif
                                                ));
  CHECK_ERROR(Model::Load(dir + "/headers_only.so"), "headers_only.so", "truncated");

  // A real shared library that is not a tvm-ncnn model.
  const std::string libc = MappedLibrary("libc.so");
  if (libc.empty()) {
    std::fprintf(stderr, "note: no libc.so mapped, skipping the foreign-library check\n");
  } else {
    CHECK_ERROR(Model::Load(libc), libc.c_str(), "not a tvm-ncnn model");
    std::ifstream f(libc, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (size_t keep : {bytes.size() / 2, bytes.size() - 1}) {
      WriteFile(dir + "/cut.so", bytes.substr(0, keep));
      CHECK_ERROR(Model::Load(dir + "/cut.so"), "cut.so", "truncated: the file has " + std::to_string(keep) + " bytes");
    }
  }

  tvm_ncnn::Options bad;
  bad.threads = -1;
  CHECK_ERROR(Model::Load(dir + "/text.so", bad), "threads", "-1");
  bad.threads = 100000;
  CHECK_ERROR(Model::Load(dir + "/text.so", bad), "threads", "100000");

  // Names read from a corrupt file end up in messages: they stay one printable line (UTF-8 kept).
  const std::string shown = tvm_ncnn::Error(std::string("blob 'a\nb\rc\x01\xff' caf\xc3\xa9\n")).what();
  CHECK(shown == "blob 'a b c\\x01\\xff' caf\xc3\xa9");

  return Finish("test_model_errors");
}
