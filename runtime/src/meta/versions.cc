// Whether a model.so was built by the versions this runtime has.
#include <string>

#include "meta/metadata.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// A model.so runs only with the exact TVM it was compiled by (TVM's own ABI and VM bytecode), the ncnn whose
// layers and param format its graphs were converted for, and the SDK whose module formats and metadata it
// carries. Versions a model does not record (older metadata had no sdk/ncnn fields) are not compared.
std::string VersionMismatch(const ModelInfo& info) {
  const struct {
    const char* what;
    const std::string& built;
    const char* runtime;
  } parts[] = {{"TVM", info.tvm_version, TvmVersion()},
               {"ncnn", info.ncnn_version, NcnnVersion()},
               {"tvm-ncnn SDK", info.sdk_version, SdkVersion()}};
  for (const auto& p : parts) {
    if (!p.built.empty() && p.built != p.runtime) {
      return std::string(" was built with ") + p.what + " " + p.built + ", but this runtime uses " + p.what + " " +
             p.runtime + "; re-export the model with the SDK that matches this runtime, or use the runtime "
             "built with it";
    }
  }
  return "";
}

}  // namespace tvm_ncnn
