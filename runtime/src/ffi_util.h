// Glue between tvm_ncnn::Tensor / Error and tvm-ffi, shared by model.cc and ffi_api.cc (not public API).
#pragma once

#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/dtype.h>
#include <tvm/ffi/error.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// One line for an ffi::Error: its kind and message without the traceback (our messages are one line).
inline std::string FfiErrorLine(const tvm::ffi::Error& e) {
  std::string s = e.kind() + ": " + e.message();
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

// 64-byte aligned CPU memory for tensors handed to TVM code (its kernels may assume alignment).
struct AlignedCpuAlloc {
  void AllocData(DLTensor* t) {
    size_t n = (tvm::ffi::GetDataSize(*t) + 63) / 64 * 64;
    t->data = std::aligned_alloc(64, n == 0 ? 64 : n);
    if (t->data == nullptr) throw Error("out of memory allocating a tensor of " + std::to_string(n) + " bytes");
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

inline DLDataType ToDLDataType(const std::string& dtype) {
  DTypeSize(dtype);  // throws for dtypes this runtime does not handle
  return tvm::ffi::StringToDLDataType(dtype);
}

// The tensor.h name of a DLPack dtype, from tensor.h's own table (each listed dtype's DLPack form made once); nullptr
// for a dtype it does not list. A run names each output's dtype: TVM's DLDataTypeToString would allocate each time.
inline const char* ListedDTypeName(DLDataType dt) {
  constexpr int kListed = static_cast<int>(DType::kBool) + 1;
  static const std::vector<DLDataType> dl = [] {
    std::vector<DLDataType> v;
    for (int i = 0; i < kListed; ++i) v.push_back(tvm::ffi::StringToDLDataType(DTypeName(static_cast<DType>(i))));
    return v;
  }();
  for (int i = 0; i < kListed; ++i) {
    if (dl[i].code == dt.code && dl[i].bits == dt.bits && dl[i].lanes == dt.lanes) {
      return DTypeName(static_cast<DType>(i));
    }
  }
  return nullptr;
}

inline std::string DTypeName(DLDataType dt) {
  if (const char* listed = ListedDTypeName(dt)) return listed;
  return std::string(tvm::ffi::DLDataTypeToString(dt));
}

inline tvm::ffi::Tensor NewFfiTensor(const std::vector<int64_t>& shape, const std::string& dtype) {
  return tvm::ffi::Tensor::FromNDAlloc(AlignedCpuAlloc(), tvm::ffi::ShapeView(shape.data(), shape.size()),
                                       ToDLDataType(dtype), DLDevice{kDLCPU, 0});
}

// Owned copy of a CPU tensor; `what` names it in errors ("output 0").
inline Tensor FromFfiTensor(const tvm::ffi::Tensor& t, const std::string& what) {
  if (t.device().device_type != kDLCPU) throw Error(what + " is not on the CPU");
  if (!t.IsContiguous()) throw Error(what + " is not contiguous");
  const std::string dtype = DTypeName(t.dtype());
  std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
  Tensor out;
  try {
    out = Tensor(shape, dtype);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  if (!out.bytes.empty()) {
    std::memcpy(out.bytes.data(), static_cast<const char*>(t.data_ptr()) + t.byte_offset(), out.bytes.size());
  }
  return out;
}

// Holds a Tensor's bytes inside the TVM tensor made from it: what the runtime hands back (outputs, a preprocessed
// image) reaches Python without another copy.
struct MovedBytesAlloc {
  std::vector<uint8_t> bytes;
  void AllocData(DLTensor* t) { t->data = bytes.data(); }
  void FreeData(DLTensor*) {}
};

inline tvm::ffi::Tensor ToFfiTensor(Tensor&& t) {
  if (t.bytes.empty()) return NewFfiTensor(t.shape, t.dtype);  // no bytes to hold: an aligned empty tensor
  const DLDataType dtype = ToDLDataType(t.dtype);
  const std::vector<int64_t> shape = std::move(t.shape);
  return tvm::ffi::Tensor::FromNDAlloc(MovedBytesAlloc{std::move(t.bytes)},
                                       tvm::ffi::ShapeView(shape.data(), shape.size()), dtype, DLDevice{kDLCPU, 0});
}

inline tvm::ffi::Tensor ToFfiTensor(const Tensor& t) {
  tvm::ffi::Tensor out = NewFfiTensor(t.shape, t.dtype);
  if (!t.bytes.empty()) std::memcpy(out.data_ptr(), t.bytes.data(), t.bytes.size());
  return out;
}

}  // namespace tvm_ncnn
