// Tensor: shape + dtype name + owned bytes. The dtype table here is the one every other file uses.
#include "tvm_ncnn/runtime.h"

#include <limits>

namespace tvm_ncnn {

namespace {

// In DType's order: the one table of names and sizes.
const struct {
  const char* name;
  size_t size;
  DType dtype;
} kDTypes[] = {{"float32", 4, DType::kFloat32}, {"float16", 2, DType::kFloat16}, {"float64", 8, DType::kFloat64},
               {"int8", 1, DType::kInt8},       {"int16", 2, DType::kInt16},     {"int32", 4, DType::kInt32},
               {"int64", 8, DType::kInt64},     {"uint8", 1, DType::kUInt8},     {"uint16", 2, DType::kUInt16},
               {"bool", 1, DType::kBool}};

// The C++ type data<T>() reads a dtype as, for the message that tells which one to use.
const char* CppType(DType d) {
  static const char* kNames[] = {"float", "(no C++ type: bytes)", "double", "int8_t", "int16_t",
                                 "int32_t", "int64_t", "uint8_t", "uint16_t", "bool"};
  return kNames[static_cast<int>(d)];
}

}  // namespace

size_t DTypeSize(const std::string& dtype) { return kDTypes[static_cast<int>(ParseDType(dtype))].size; }

DType ParseDType(const std::string& name) {
  for (const auto& e : kDTypes) {
    if (name == e.name) return e.dtype;
  }
  throw Error("unsupported dtype '" + name + "'");
}

const char* DTypeName(DType dtype) { return kDTypes[static_cast<int>(dtype)].name; }

void CheckDType(const std::string& dtype, DType want) {
  if (dtype == DTypeName(want)) return;
  const DType have = ParseDType(dtype);  // an unknown name says so
  const bool readable = have != DType::kFloat16;
  throw Error(std::string("tensor is ") + dtype + ", not " + DTypeName(want) +
              (readable ? std::string(": read it as data<") + CppType(have) + ">()" : ": read its bytes"));
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Element count with overflow checks: shapes come from files (metadata, .npy headers) we do not trust.
static int64_t CheckedNumel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("negative dimension in shape " + ShapeString(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 8 / d) {
      throw Error("shape " + ShapeString(shape) + " is too large");
    }
    n *= d;
  }
  return n;
}

Tensor::Tensor(std::vector<int64_t> shape_in, std::string dtype_in)
    : shape(std::move(shape_in)), dtype(std::move(dtype_in)) {
  size_t elem = DTypeSize(dtype);
  bytes.assign(static_cast<size_t>(CheckedNumel(shape)) * elem, 0);
}

int64_t Tensor::numel() const { return CheckedNumel(shape); }

// Names in messages: the model's own list, so a typo is easy to see.
static size_t IndexOf(const std::vector<TensorInfo>& list, const std::string& name, const char* role) {
  std::string names;
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].name == name) return i;
    names += (i ? ", '" : "'") + list[i].name + "'";
  }
  throw Error(std::string("the model has no ") + role + " '" + name + "' (its " + role + "s: " +
              (names.empty() ? "none" : names) + ")");
}

size_t ModelInfo::InputIndex(const std::string& name) const { return IndexOf(inputs, name, "input"); }
size_t ModelInfo::OutputIndex(const std::string& name) const { return IndexOf(outputs, name, "output"); }

// The one check of an input against the model's metadata: Model::Run, deploy_app and tvm_ncnn.load's calls
// all come through here, so they refuse the same inputs with the same words.
void CheckInput(const TensorInfo& want, const std::vector<int64_t>& shape, const std::string& dtype) {
  const std::string why = want.WhyNotShape(shape);
  if (!why.empty() || dtype != want.dtype) {
    // a dynamic input's rule named (": H=730 is not a multiple of 32 ..."); a static shape says it all
    const bool rule = !why.empty() && !want.dynamic.empty();
    throw Error("input '" + want.name + "' expects " + ShapeText(want) + " " + want.dtype + ", got " +
                ShapeString(shape) + " " + dtype + (rule ? ": " + why : ""));
  }
}

void CheckInput(const TensorInfo& want, const Tensor& got) { CheckInput(want, got.shape, got.dtype); }

std::string TensorInfo::WhyNotShape(const std::vector<int64_t>& got) const {
  if (got.size() != shape.size()) return "rank " + std::to_string(got.size());
  for (size_t axis = 0; axis < shape.size(); ++axis) {
    const DynamicDim* d = shape[axis] == -1 ? Dynamic(static_cast<int>(axis)) : nullptr;
    const std::string size = std::to_string(got[axis]);
    if (d != nullptr && !d->Accepts(got[axis])) return d->name + "=" + size + " is not " + RuleText(*d);
    if (d == nullptr && got[axis] != shape[axis]) return "dimension " + std::to_string(axis) + " is " + size;
  }
  return "";
}

std::string RuleText(const DynamicDim& d) {
  return (d.multiple > 1 ? "a multiple of " + std::to_string(d.multiple) + " from " : "from ") +
         std::to_string(d.min) + " to " + std::to_string(d.max);
}

std::string ShapeText(const TensorInfo& t) {
  std::string out = "[";
  for (size_t axis = 0; axis < t.shape.size(); ++axis) {
    const DynamicDim* d = t.Dynamic(static_cast<int>(axis));
    out += (axis ? "," : "") + (d != nullptr ? d->name : std::to_string(t.shape[axis]));
  }
  return out + "]";
}

}  // namespace tvm_ncnn
