// The typed parts of the API (issue #27): DType and the checked data<T>() view, an empty / moved-from Model that
// refuses with one line instead of crashing, ScoreTopK refusing k <= 0, outputs by name.
#include <utility>

#include "check.h"

int main() {
  using tvm_ncnn::DType;
  CHECK(tvm_ncnn::ParseDType("int64") == DType::kInt64);
  CHECK(std::string(tvm_ncnn::DTypeName(DType::kUInt8)) == "uint8");
  for (const char* name : {"float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
                           "bool"}) {
    CHECK(tvm_ncnn::DTypeName(tvm_ncnn::ParseDType(name)) == std::string(name));
  }
  CHECK_ERROR(tvm_ncnn::ParseDType("complex64"), "unsupported dtype 'complex64'");

  tvm_ncnn::Tensor t({2, 3}, DType::kInt64);
  CHECK(t.dtype == "int64" && t.type() == DType::kInt64 && t.nbytes() == 48);
  t.data<int64_t>()[5] = 42;
  const tvm_ncnn::Tensor& ct = t;
  CHECK(ct.data<int64_t>()[5] == 42);
  CHECK_ERROR(t.data<float>(), "tensor is int64, not float32", "data<int64_t>()");
  tvm_ncnn::Tensor h({4}, DType::kFloat16);
  CHECK_ERROR(h.data<float>(), "tensor is float16", "bytes");
  tvm_ncnn::Tensor f({3}, "float32");
  CHECK(f.data<float>() == f.f32());

  // An empty Model: valid() false, every use one line.
  tvm_ncnn::Model empty;
  CHECK(!empty.valid());
  CHECK_ERROR(empty.info(), "Model is empty", "Model::Load");
  CHECK_ERROR(empty.Run({f}), "Model is empty");
  CHECK_ERROR(empty.threads(), "Model is empty");
  CHECK_ERROR(empty.contexts(), "Model is empty");
  tvm_ncnn::Model moved_to(std::move(empty));
  CHECK(!moved_to.valid());
  CHECK_ERROR(empty.precision(), "Model is empty");  // NOLINT(bugprone-use-after-move): defined, and refused

  // ScoreTopK: k >= 1.
  CHECK_ERROR(tvm_ncnn::ScoreTopK(f, {}, 0), "k must be at least 1, got 0");
  CHECK_ERROR(tvm_ncnn::ScoreTopK(f, {}, -3), "got -3");
  CHECK(tvm_ncnn::ScoreTopK(f, {}, 1).classes.size() == 1);

  // Outputs by name.
  tvm_ncnn::ModelInfo info;
  info.outputs = {{"boxes", {1, 4}, "float32"}, {"scores", {1, 2}, "float32"}};
  info.inputs = {{"images", {1, 3, 8, 8}, "float32"}};
  CHECK(info.OutputIndex("scores") == 1 && info.InputIndex("images") == 0);
  CHECK_ERROR(info.OutputIndex("score"), "no output 'score'", "'boxes', 'scores'");
  return Finish("test_api_types");
}
