// A classifier's output as people read it: the top k classes with their scores (deploy_app, `tvm-ncnn run`).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

// Element i of a tensor as a double, whatever its dtype.
double ValueAt(const Tensor& t, size_t i) {
  const uint8_t* p = t.bytes.data();
  const std::string& d = t.dtype;
  auto load = [&](auto zero) {
    decltype(zero) v;
    std::memcpy(&v, p + i * sizeof(v), sizeof(v));
    return static_cast<double>(v);
  };
  if (d == "float32") return load(float());
  if (d == "float64") return load(double());
  if (d == "int8") return load(int8_t());
  if (d == "int16") return load(int16_t());
  if (d == "int32") return load(int32_t());
  if (d == "int64") return load(int64_t());
  if (d == "uint8" || d == "bool") return load(uint8_t());
  if (d == "uint16") return load(uint16_t());
  throw Error("cannot read values of dtype " + d + " for the top-k");
}

// The scores of every element, and what they are (TopK::kind).
std::vector<double> Scores(const Tensor& out, std::string* kind) {
  const size_t n = static_cast<size_t>(out.numel());
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = ValueAt(out, i);
  if (out.dtype != "float32" && out.dtype != "float64" && out.dtype != "float16") {
    *kind = "values";
    return v;
  }
  double sum = 0;
  bool in_range = true;
  for (double x : v) {
    sum += x;
    in_range = in_range && x >= 0.0 && x <= 1.0;
  }
  if (n > 0 && in_range && std::fabs(sum - 1.0) < 1e-3) {
    *kind = "probabilities";
    return v;
  }
  *kind = "softmax";
  const double mx = n ? *std::max_element(v.begin(), v.end()) : 0.0;
  double total = 0;
  for (double& x : v) total += (x = std::exp(x - mx));
  for (double& x : v) x /= total;
  return v;
}

}  // namespace

TopK ScoreTopK(const Tensor& output, const std::vector<std::string>& labels, int k) {
  if (k <= 0) throw Error("top-k: k must be at least 1, got " + std::to_string(k));
  TopK top;
  const std::vector<double> scores = Scores(output, &top.kind);
  top.description = top.kind == "softmax"         ? "softmax probabilities (the output is not a probability vector)"
                    : top.kind == "probabilities" ? "probabilities"
                                                  : "raw values";
  std::vector<size_t> idx(scores.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  const size_t m = std::min(idx.size(), static_cast<size_t>(std::max(k, 0)));
  // NaN scores sort last so they never hide a real class.
  auto better = [&](size_t a, size_t b) {
    if (std::isnan(scores[b])) return !std::isnan(scores[a]);
    return scores[a] > scores[b];
  };
  std::partial_sort(idx.begin(), idx.begin() + m, idx.end(), better);
  const bool have_labels = labels.size() == scores.size();  // labels for another output do not apply
  for (size_t i = 0; i < m; ++i) {
    top.classes.push_back({static_cast<int64_t>(idx[i]), have_labels ? labels[idx[i]] : "", scores[idx[i]]});
  }
  return top;
}

}  // namespace tvm_ncnn
