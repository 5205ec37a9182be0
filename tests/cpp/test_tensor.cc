// Tensor construction, sizes and dtype table.
#include <initializer_list>

#include "check.h"

int main() {
  using tvm_ncnn::Tensor;
  Tensor t({1, 3, 4, 5}, "float32");
  CHECK(t.numel() == 60);
  CHECK(t.nbytes() == 240);
  bool zero = true;
  for (int i = 0; i < 60; ++i) zero = zero && t.f32()[i] == 0.f;
  CHECK(zero);

  CHECK(Tensor({}, "float64").numel() == 1);  // a scalar
  CHECK(Tensor({}, "float64").nbytes() == 8);
  CHECK(Tensor({0, 7}, "int64").nbytes() == 0);
  CHECK(Tensor({2, 3}, "uint8").nbytes() == 6);
  CHECK(Tensor({2}, "int32").nbytes() == 8);

  CHECK(tvm_ncnn::DTypeSize("float32") == 4);
  CHECK(tvm_ncnn::DTypeSize("float16") == 2);
  CHECK(tvm_ncnn::DTypeSize("int64") == 8);
  CHECK(tvm_ncnn::DTypeSize("uint8") == 1);
  CHECK(tvm_ncnn::DTypeSize("bool") == 1);
  CHECK_ERROR(tvm_ncnn::DTypeSize("complex64"), "complex64");
  CHECK_ERROR(Tensor({2}, "float"), "unsupported dtype 'float'");
  CHECK_ERROR(Tensor({2, -1}, "float32"), "negative", "[2,-1]");
  CHECK_ERROR(Tensor({1LL << 40, 1LL << 40}, "float32"), "too large");

  CHECK(tvm_ncnn::ShapeString({1, 3, 224, 224}) == "[1,3,224,224]");
  CHECK(tvm_ncnn::ShapeString({}) == "[]");
  return Finish("test_tensor");
}
