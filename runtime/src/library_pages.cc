// Memory: model.so's module blob, once TVM has read it.
#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "internal.h"

namespace tvm_ncnn {

// model.so carries its modules (ncnn graphs and weights, TVM code, metadata) as one blob in its read-only
// data, __tvm_ffi__library_bin. TVM's loader reads it once into module objects; after that its pages are
// only resident memory the size of the weights, counted against the process. They are clean, read-only
// file pages: let the kernel drop them (a later read would fault them back from the file, identical).
void ReleaseLibraryBlobPages(const std::string& abs_path) {
  void* handle = dlopen(abs_path.c_str(), RTLD_LAZY | RTLD_NOLOAD);  // the loader's handle, +1 reference
  if (handle == nullptr) return;
  void* blob = dlsym(handle, "__tvm_ffi__library_bin");
  Dl_info info{};
  ElfW(Sym)* sym = nullptr;
  if (blob != nullptr && dladdr1(blob, &info, reinterpret_cast<void**>(&sym), RTLD_DL_SYMENT) != 0 &&
      sym != nullptr && sym->st_size > 0) {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t start = reinterpret_cast<uintptr_t>(blob);
    const uintptr_t begin = (start + page - 1) / page * page, end = (start + sym->st_size) / page * page;
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }
  dlclose(handle);
}

}  // namespace tvm_ncnn
