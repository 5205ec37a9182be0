// What this runtime is (versions fixed at build time) and what it runs on (core count).
#include "tvm_ncnn/runtime.h"

#include "cpu.h"  // ncnn

#if !defined(TVM_NCNN_SDK_VERSION) || !defined(TVM_NCNN_TVM_VERSION) || !defined(TVM_NCNN_NCNN_VERSION)
#error "the build must define TVM_NCNN_SDK_VERSION, TVM_NCNN_TVM_VERSION and TVM_NCNN_NCNN_VERSION"
#endif

namespace tvm_ncnn {

const char* SdkVersion() { return TVM_NCNN_SDK_VERSION; }
const char* TvmVersion() { return TVM_NCNN_TVM_VERSION; }
const char* NcnnVersion() { return TVM_NCNN_NCNN_VERSION; }

int DetectThreads() {
  int n = ncnn::get_big_cpu_count();
  return n < 1 ? 1 : n;
}

}  // namespace tvm_ncnn
