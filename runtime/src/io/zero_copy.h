// When ncnn may read a model's input in place instead of a copy: one rule, used where the inputs are allocated
// (model.cc) and where they are handed to ncnn (ncnn/region_run.cc).
//
// ncnn kernels may read up to NCNN_MALLOC_OVERREAD (64) bytes past the end of a Mat -- its own allocations carry
// that slack. A TVM tensor is read in place only when it is 64-byte aligned (TVM allocates so) and those bytes
// lie in the page of its last byte, so they are mapped (their values are never used).
#pragma once

#include <tvm/ffi/container/tensor.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tvm_ncnn {

constexpr uintptr_t kViewAlign = 64;
constexpr uintptr_t kViewOverread = 64;

// Whether ncnn may read the `nbytes` at `data` in place.
bool SafeToView(const void* data, size_t nbytes);

// A CPU tensor whose data passes SafeToView. Plain malloc would sometimes place a page-sized tensor on a page
// boundary, and it would be copied at every call; this costs one page per tensor instead.
tvm::ffi::Tensor NewViewableTensor(const std::vector<int64_t>& shape, const std::string& dtype);

}  // namespace tvm_ncnn
