// What a loaded Model holds (model.cc loads it, model_run.cc runs it): the shared, read-only part -- the loaded
// library, its ncnn regions (one ncnn::Net each, the weights) and the metadata -- and a pool of execution
// contexts, the per-call part.
#pragma once

#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "internal.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// One caller's state, as ncnn's Extractor is to its Net: a Relax VM instance over the model's executable (its
// registers, frames and the buffers it allocates from TVM's pooled allocator) and the input tensors the VM is
// called with. The VM's constants and the ncnn regions are the executable's, shared by every context.
struct Model::Context {
  tvm::ffi::Module vm{tvm::ffi::UnsafeInit()};
  tvm::ffi::Function main;
  std::vector<tvm::ffi::Tensor> inputs;  // allocated once, refilled by runs whose inputs cannot be read in place
  // A call's argument and result lists, kept for their capacity: a steady loop allocates none of them again.
  // `borrowed` holds the last in-place view of each input, reused while the caller passes the same memory.
  std::vector<tvm::ffi::Any> args;
  std::vector<tvm::ffi::AnyView> arg_views;
  std::vector<tvm::ffi::Tensor> results, borrowed, borrowed_out;
};

struct Model::Impl {
  std::string path;
  std::string signer;  // fingerprint of the trusted key that verified the file ("" when none was given)
  ModelInfo info;
  int threads = 1;
  std::string thread_policy;  // threads/tvm_on_openmp.h ThreadPolicy
  RunPrecision precision;
  // Members die in reverse order: the contexts (VMs) before the loaded library their code lives in.
  tvm::ffi::Module exec{tvm::ffi::UnsafeInit()};
  std::vector<tvm::ffi::Module> regions;  // the ncnn modules (owned by exec too): Profile names their calls
  // info.direct_region's function: runs call it with the inputs and the caller's outputs, not the VM's main.
  tvm::ffi::Optional<tvm::ffi::Function> direct;
  std::mutex mu;                          // guards idle and created; never held while a model runs
  std::vector<std::unique_ptr<Context>> idle;
  int created = 0;
};

// A new context on m's executable (model_run.cc). Throws tvm::ffi::Error from TVM.
std::unique_ptr<Model::Context> NewContext(const Model::Impl& m);

}  // namespace tvm_ncnn
