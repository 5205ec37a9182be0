// deploy_app/outputs.cc: every output of the model by its name: listed, saved (--output: .npy or .npz), and told
// apart from class scores, so that a detector exported without --task is not shown as a softmax top-5.
#pragma once

#include <string>
#include <vector>

#include "tvm_ncnn/runtime.h"

namespace deploy_app {

// The model's name for output i ("output i" when model.so lists fewer outputs than the run returned).
std::string OutputName(const tvm_ncnn::ModelInfo& info, size_t i);

// Before the model runs: a .npy holds one array, so a model with several outputs needs a .npz. Throws UsageError.
void CheckOutputFile(const std::string& path, const tvm_ncnn::ModelInfo& info);

// Saves every output to path (.npz: one NAME.npy entry each; else the one output as .npy) and returns what was
// saved, for the "saved" line: "output 'output' to y.npy", "2 outputs ('boxes', 'scores') to y.npz".
std::string SaveOutputs(const std::string& path, const tvm_ncnn::ModelInfo& info,
                        const std::vector<tvm_ncnn::Tensor>& outputs);

// A vector of class scores: at most one dimension other than 1 ([1,1000], [1000,1,1]); [1,84,8400] is not.
bool ClassScores(const tvm_ncnn::Tensor& output);

// One line for a model with no task whose first output is not class scores: what it is and what to do.
std::string NotClassScoresLine(const tvm_ncnn::ModelInfo& info, const std::vector<tvm_ncnn::Tensor>& outputs);

// "output   'boxes' [1,10,4] float32\n" for each output.
std::string OutputLines(const tvm_ncnn::ModelInfo& info, const std::vector<tvm_ncnn::Tensor>& outputs);

// [{"name", "shape", "dtype"}, ...] for each output.
std::string OutputsJson(const tvm_ncnn::ModelInfo& info, const std::vector<tvm_ncnn::Tensor>& outputs);

}  // namespace deploy_app
