// Tensor: shape + dtype name + owned bytes. The dtype table here is the one every other file uses.
#include "tvm_ncnn/runtime.h"

#include <limits>

namespace tvm_ncnn {

size_t DTypeSize(const std::string& dtype) {
  static const struct {
    const char* name;
    size_t size;
  } kTable[] = {{"float32", 4}, {"float16", 2}, {"float64", 8}, {"int8", 1},   {"int16", 2},
                {"int32", 4},   {"int64", 8},   {"uint8", 1},   {"uint16", 2}, {"bool", 1}};
  for (const auto& e : kTable) {
    if (dtype == e.name) return e.size;
  }
  throw Error("unsupported dtype '" + dtype + "'");
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

// The one check of an input against the model's metadata: Model::Run, deploy_app and tvm_ncnn.load's calls
// all come through here, so they refuse the same inputs with the same words.
void CheckInput(const TensorInfo& want, const Tensor& got) {
  if (got.shape != want.shape || got.dtype != want.dtype) {
    throw Error("input '" + want.name + "' expects " + ShapeString(want.shape) + " " + want.dtype + ", got " +
                ShapeString(got.shape) + " " + got.dtype);
  }
}

}  // namespace tvm_ncnn
