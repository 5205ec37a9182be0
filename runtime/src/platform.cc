// What this runtime is and runs on: the versions fixed at build time, the page size.
#include <unistd.h>

#include "internal.h"
#include "tvm_ncnn/runtime.h"

#if !defined(TVM_NCNN_SDK_VERSION) || !defined(TVM_NCNN_TVM_VERSION) || !defined(TVM_NCNN_NCNN_VERSION)
#error "the build must define TVM_NCNN_SDK_VERSION, TVM_NCNN_TVM_VERSION and TVM_NCNN_NCNN_VERSION"
#endif

namespace tvm_ncnn {

const char* SdkVersion() { return TVM_NCNN_SDK_VERSION; }
const char* TvmVersion() { return TVM_NCNN_TVM_VERSION; }
const char* NcnnVersion() { return TVM_NCNN_NCNN_VERSION; }

uintptr_t PageSize() {
  static const uintptr_t page = [] {
    long p = sysconf(_SC_PAGESIZE);
    return static_cast<uintptr_t>(p > 0 ? p : 4096);
  }();
  return page;
}

}  // namespace tvm_ncnn
