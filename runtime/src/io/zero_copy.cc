// The rule of zero_copy.h, and the allocation that meets it.
#include "io/zero_copy.h"

#include <unistd.h>

#include <cstdlib>

#include "ffi_util.h"
#include "internal.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

struct ViewableAlloc {
  void AllocData(DLTensor* t) {
    const size_t nbytes = tvm::ffi::GetDataSize(*t);
    const uintptr_t page = PageSize();
    const size_t total = (nbytes + page + kViewOverread + kViewAlign - 1) / kViewAlign * kViewAlign;
    base = std::aligned_alloc(kViewAlign, total);
    if (base == nullptr) throw Error("out of memory allocating an input of " + std::to_string(nbytes) + " bytes");
    const uintptr_t end = reinterpret_cast<uintptr_t>(base) + total;
    uintptr_t start = reinterpret_cast<uintptr_t>(base);
    while (nbytes > 0 && !SafeToView(reinterpret_cast<void*>(start), nbytes) &&
           start + kViewAlign + nbytes + kViewOverread <= end) {
      start += kViewAlign;
    }
    t->data = reinterpret_cast<void*>(start);
  }
  void FreeData(DLTensor*) { std::free(base); }
  void* base = nullptr;
};

}  // namespace

bool SafeToView(const void* data, size_t nbytes) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  if (begin % kViewAlign != 0 || nbytes == 0) return false;
  const uintptr_t last = begin + nbytes - 1;
  return (last % PageSize()) + kViewOverread < PageSize();
}

tvm::ffi::Tensor NewViewableTensor(const std::vector<int64_t>& shape, const std::string& dtype) {
  return tvm::ffi::Tensor::FromNDAlloc(ViewableAlloc(), tvm::ffi::ShapeView(shape.data(), shape.size()),
                                       ToDLDataType(dtype), DLDevice{kDLCPU, 0});
}

}  // namespace tvm_ncnn
