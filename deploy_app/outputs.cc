// What deploy_app does with the model's outputs besides scoring them (outputs.h).
#include "outputs.h"

#include "args.h"
#include "json.h"
#include "npz.h"
#include "tvm_ncnn/detect.h"

namespace deploy_app {

std::string OutputName(const tvm_ncnn::ModelInfo& info, size_t i) {
  return i < info.outputs.size() && !info.outputs[i].name.empty() ? info.outputs[i].name
                                                                   : "output " + std::to_string(i);
}

namespace {

bool IsNpz(const std::string& path) { return LowerExtension(path) == ".npz"; }

// "('boxes', 'scores')"
std::string QuotedNames(const tvm_ncnn::ModelInfo& info, size_t count) {
  std::string s = "(";
  for (size_t i = 0; i < count; ++i) s += (i ? ", '" : "'") + OutputName(info, i) + "'";
  return s + ")";
}

// The suggested file name for --output, with the extension the model needs.
std::string SuggestedFile(size_t outputs) { return outputs > 1 ? "out.npz" : "out.npy"; }

}  // namespace

void CheckOutputFile(const std::string& path, const tvm_ncnn::ModelInfo& info) {
  const size_t n = info.outputs.size();
  if (n > 1 && !IsNpz(path)) {
    throw UsageError{"--output '" + path + "': the model has " + std::to_string(n) + " outputs " +
                     QuotedNames(info, n) + " and a .npy holds one; give a .npz name (numpy.load reads it)"};
  }
}

std::string SaveOutputs(const std::string& path, const tvm_ncnn::ModelInfo& info,
                        const std::vector<tvm_ncnn::Tensor>& outputs) {
  const size_t n = outputs.size();
  if (IsNpz(path)) {
    std::vector<std::pair<std::string, const tvm_ncnn::Tensor*>> arrays;
    for (size_t i = 0; i < n; ++i) arrays.emplace_back(OutputName(info, i), &outputs[i]);
    SaveNpz(path, arrays);
    return n == 1 ? "output '" + OutputName(info, 0) + "' to " + path
                  : std::to_string(n) + " outputs " + QuotedNames(info, n) + " to " + path;
  }
  if (n != 1) {  // model.so listed one output but the run returned more: checked again, now on the tensors
    throw UsageError{"--output '" + path + "': the model returned " + std::to_string(n) +
                     " outputs and a .npy holds one; give a .npz name (numpy.load reads it)"};
  }
  tvm_ncnn::SaveNpy(path, outputs[0]);
  return "output '" + OutputName(info, 0) + "' to " + path;
}

bool ClassScores(const tvm_ncnn::Tensor& output) {
  int wide = 0;
  for (int64_t d : output.shape) wide += d != 1;
  return wide <= 1;
}

std::string NotClassScoresLine(const tvm_ncnn::ModelInfo& info, const std::vector<tvm_ncnn::Tensor>& outputs) {
  const tvm_ncnn::Tensor& y = outputs.at(0);
  return "scores   none: output '" + OutputName(info, 0) + "' " + tvm_ncnn::ShapeString(y.shape) + " " + y.dtype +
         " is not class scores and model.so records no task; export with --task " +
         JoinNames(tvm_ncnn::DetectorTasks(), "|", "|") + " to get " +
         "boxes, or save the raw outputs with --output " + SuggestedFile(outputs.size()) + "\n";
}

std::string OutputLines(const tvm_ncnn::ModelInfo& info, const std::vector<tvm_ncnn::Tensor>& outputs) {
  std::string s;
  for (size_t i = 0; i < outputs.size(); ++i) {
    s += "output   '" + OutputName(info, i) + "' " + tvm_ncnn::ShapeString(outputs[i].shape) + " " +
         outputs[i].dtype + "\n";
  }
  return s;
}

std::string OutputsJson(const tvm_ncnn::ModelInfo& info, const std::vector<tvm_ncnn::Tensor>& outputs) {
  std::string j = "[";
  for (size_t i = 0; i < outputs.size(); ++i) {
    j += std::string(i ? ", " : "") + "{\"name\": " + JsonString(OutputName(info, i)) + ", \"shape\": " +
         tvm_ncnn::ShapeString(outputs[i].shape) + ", \"dtype\": " + JsonString(outputs[i].dtype) + "}";
  }
  return j + "]";
}

}  // namespace deploy_app
