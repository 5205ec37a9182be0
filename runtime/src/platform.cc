// What this runtime is: the versions fixed at build time.
#include "tvm_ncnn/runtime.h"

#if !defined(TVM_NCNN_SDK_VERSION) || !defined(TVM_NCNN_TVM_VERSION) || !defined(TVM_NCNN_NCNN_VERSION)
#error "the build must define TVM_NCNN_SDK_VERSION, TVM_NCNN_TVM_VERSION and TVM_NCNN_NCNN_VERSION"
#endif

namespace tvm_ncnn {

const char* SdkVersion() { return TVM_NCNN_SDK_VERSION; }
const char* TvmVersion() { return TVM_NCNN_TVM_VERSION; }
const char* NcnnVersion() { return TVM_NCNN_NCNN_VERSION; }

}  // namespace tvm_ncnn
