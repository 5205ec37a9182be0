// ScoreTopK: what deploy_app and `tvm-ncnn run` print for an output; and CheckInput, the input check they share.
#include <cmath>
#include <cstring>
#include <limits>

#include "check.h"

using tvm_ncnn::Tensor;

static Tensor Floats(std::initializer_list<float> values) {
  Tensor t({1, static_cast<int64_t>(values.size())}, "float32");
  std::memcpy(t.f32(), values.begin(), values.size() * sizeof(float));
  return t;
}

int main() {
  // A probability vector is shown as it is, best first, with its labels.
  tvm_ncnn::TopK top = tvm_ncnn::ScoreTopK(Floats({0.1f, 0.7f, 0.2f}), {"a", "b", "c"}, 2);
  CHECK(top.kind == "probabilities");
  CHECK(top.classes.size() == 2);
  CHECK(top.classes[0].index == 1 && top.classes[0].label == "b" && std::fabs(top.classes[0].score - 0.7) < 1e-6);
  CHECK(top.classes[1].index == 2 && top.classes[1].label == "c");

  // Logits get a softmax; labels for another number of classes are not used; k larger than the output is cut.
  top = tvm_ncnn::ScoreTopK(Floats({2.f, -1.f, 0.f}), {"only one"}, 10);
  CHECK(top.kind == "softmax");
  CHECK(top.description.find("softmax") != std::string::npos);
  CHECK(top.classes.size() == 3);
  CHECK(top.classes[0].index == 0 && top.classes[0].label.empty());
  double sum = 0;
  for (const tvm_ncnn::ScoredClass& c : top.classes) sum += c.score;
  CHECK(std::fabs(sum - 1.0) < 1e-9);

  // NaN sorts last; integer outputs are values as they are.
  top = tvm_ncnn::ScoreTopK(Floats({std::numeric_limits<float>::quiet_NaN(), 0.25f, 0.75f}), {}, 3);
  CHECK(top.classes.size() == 3 && std::isnan(top.classes[2].score));
  Tensor ints({3}, "int64");
  const int64_t v[3] = {5, 9, -2};
  std::memcpy(ints.bytes.data(), v, sizeof(v));
  top = tvm_ncnn::ScoreTopK(ints, {}, 1);
  CHECK(top.kind == "values" && top.classes.size() == 1 && top.classes[0].index == 1 && top.classes[0].score == 9);

  const tvm_ncnn::TensorInfo want{"x", {1, 3, 16, 16}, "float32"};
  tvm_ncnn::CheckInput(want, Tensor({1, 3, 16, 16}, "float32"));
  CHECK_ERROR(tvm_ncnn::CheckInput(want, Tensor({1, 3, 8, 8}, "float32")),
              "input 'x' expects [1,3,16,16] float32, got [1,3,8,8] float32");
  CHECK_ERROR(tvm_ncnn::CheckInput(want, Tensor({1, 3, 16, 16}, "float64")), "got [1,3,16,16] float64");
  return Finish("test_scores");
}
