// Model::Profile's machinery (profile.cc): time every call a Relax VM makes through its instrument hook.
#pragma once

#include <tvm/ffi/extra/module.h>

#include <functional>
#include <vector>

#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// Puts a timing hook on `vm` (the VM's "set_instrument", called before and after each of its calls), runs
// `run_once` once to warm up and then `runs` times, takes the hook off again (also when a run throws), and
// returns the calls' own times per run. `regions` are the model's ncnn modules: a call whose name is one of
// their functions is an "ncnn region" row, with the layer count of the region's graph.
ProfileReport ProfileVm(const tvm::ffi::Module& vm, const std::vector<tvm::ffi::Module>& regions, int runs,
                        const std::function<void()>& run_once);

}  // namespace tvm_ncnn
