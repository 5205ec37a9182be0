// tvm-ncnn runtime: tensors as the C++ API passes them, and what a model says of its inputs and outputs (shapes,
// dtypes, dynamic sizes with their rules). Included by runtime.h; the Error they throw is declared there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tvm_ncnn {

// Bytes per element of a numpy-style dtype name: float16/32/64, int8/16/32/64, uint8/16, bool.
// Throws Error for any other name.
size_t DTypeSize(const std::string& dtype);

// "[1,3,224,224]": how shapes appear in messages.
std::string ShapeString(const std::vector<int64_t>& shape);

// The element types a tensor may hold; the numpy-style names (Tensor::dtype, TensorInfo::dtype) spell them.
enum class DType { kFloat32, kFloat16, kFloat64, kInt8, kInt16, kInt32, kInt64, kUInt8, kUInt16, kBool };
DType ParseDType(const std::string& name);  // throws Error for a name DTypeSize refuses
const char* DTypeName(DType dtype);        // "float32", ...

// The DType of a C++ element type, for Tensor::data<T>() (float16 has no C++ type here: use uint16_t bytes via
// data<uint16_t>() on a "uint16" tensor, or bytes).
template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kFloat32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::kFloat64; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::kInt8; };
template <> struct DTypeOf<int16_t> { static constexpr DType value = DType::kInt16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kInt32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kInt64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::kUInt8; };
template <> struct DTypeOf<uint16_t> { static constexpr DType value = DType::kUInt16; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::kBool; };

// Throws Error("tensor is int64, not float32: read it as data<int64_t>()") unless `dtype` names `want`
// (io/tensor.cc); what Tensor::data<T>() checks.
void CheckDType(const std::string& dtype, DType want);

// A dense, row-major tensor that owns its bytes. dtype is a numpy-style name ("float32", "int64", ...).
struct Tensor {
  std::vector<int64_t> shape;
  std::string dtype = "float32";
  std::vector<uint8_t> bytes;

  Tensor() = default;
  Tensor(std::vector<int64_t> shape, std::string dtype);  // zero-filled; throws on a bad dtype or dim
  Tensor(std::vector<int64_t> shape, DType dtype) : Tensor(std::move(shape), std::string(DTypeName(dtype))) {}
  int64_t numel() const;
  size_t nbytes() const { return bytes.size(); }
  DType type() const { return ParseDType(dtype); }
  // The elements as T, checked: a tensor whose dtype is not T's refuses with one line (CheckDType).
  template <typename T> T* data() { CheckDType(dtype, DTypeOf<T>::value); return reinterpret_cast<T*>(bytes.data()); }
  template <typename T> const T* data() const {
    CheckDType(dtype, DTypeOf<T>::value);
    return reinterpret_cast<const T*>(bytes.data());
  }
  // Unchecked float view (older spelling; prefer data<float>()).
  float* f32() { return reinterpret_cast<float*>(bytes.data()); }
  const float* f32() const { return reinterpret_cast<const float*>(bytes.data()); }
};

// A tensor in the caller's memory, not owned: what Model::Run reads inputs from without a copy (see there).
// `data` must stay valid and unchanged during the call.
struct TensorView {
  const void* data = nullptr;
  std::vector<int64_t> shape;
  std::string dtype = "float32";

  TensorView() = default;
  TensorView(const void* data, std::vector<int64_t> shape, std::string dtype = "float32")
      : data(data), shape(std::move(shape)), dtype(std::move(dtype)) {}
  TensorView(const Tensor& t) : data(t.bytes.data()), shape(t.shape), dtype(t.dtype) {}  // NOLINT: implicit
};

// A dimension of an input whose size varies from call to call (its shape holds -1 there): the sizes the graph
// accepts are the multiples of `multiple` from `min` to `max` (metadata "inputs"[i]."dynamic", runtime/FORMAT.md).
struct DynamicDim {
  int axis = 0;
  std::string name;  // e.g. "H", "W"
  int64_t multiple = 1, min = 1, max = 0;
  bool Accepts(int64_t size) const { return size >= min && size <= max && size % multiple == 0; }
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // -1 where the size is dynamic (an input's: see `dynamic`; an output's follows)
  std::string dtype;
  std::vector<DynamicDim> dynamic;  // an input's dynamic dimensions and their rules, in axis order
  // "" when `shape` is a shape this tensor takes, else why not, in words ("H=730 is not a multiple of 32").
  std::string WhyNotShape(const std::vector<int64_t>& shape) const;
  const DynamicDim* Dynamic(int axis) const {
    for (const DynamicDim& d : dynamic) {
      if (d.axis == axis) return &d;
    }
    return nullptr;
  }
};

// Throws Error("input 'NAME' expects [1,3,224,224] float32, got [1,3,8,8] float32") unless `got` has the
// shape and dtype of `want` (a dynamic dimension: a size its rule takes; the message names the rule, "expects
// [1,3,H,W] float32, got [1,3,730,1000] float32: H=730 is not a multiple of 32 from 32 to 4096"). Model::Run
// checks every input with it; call it to check an input before that.
void CheckInput(const TensorInfo& want, const Tensor& got);
void CheckInput(const TensorInfo& want, const std::vector<int64_t>& shape, const std::string& dtype);

// "a multiple of 32 from 32 to 4096": the sizes a dynamic dimension takes, as messages say them.
std::string RuleText(const DynamicDim& d);
// "[1,3,H,W]": a tensor's shape with its dynamic dimensions named, as messages say them.
std::string ShapeText(const TensorInfo& t);

}  // namespace tvm_ncnn
