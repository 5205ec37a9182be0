// TVM's parallel loops on ncnn's OpenMP threads (tvm_on_openmp.cc says why).
#pragma once

#include <string>

namespace tvm_ncnn {

// Points the TVM code of the model.so loaded from `library_path` (already loaded) at OpenMP for its parallel
// loops, `threads` threads each; false when it stays on TVM's own pool (TVM_NCNN_TVM_POOL=tvm, or the library
// cannot be found again).
bool RunTvmLoopsOnOpenMP(const std::string& library_path, int threads);

// The policy in effect, in words, for deploy_app's threads line, the profile header and LoadedModel.thread_policy:
// one pool or two, and the wait policy the environment gave libgomp (as far as this process can tell: a libgomp
// loaded before the runtime read the environment of that moment).
std::string ThreadPolicy(bool tvm_on_openmp);

}  // namespace tvm_ncnn
