// Which precision a model runs at: the one it was exported with (metadata "precision"), unless the caller
// overrides it at load, and fp16 only where the CPU has fp16 arithmetic -- as native ncnn decides per layer, so
// that a Pi 5 runs ncnn's fp16 kernels and a Pi 4 or an x86 machine the fp32 ones. The names: meta/tables.h.
#include <string>
#include <vector>

#include "cpu.h"  // ncnn
#include "internal.h"
#include "meta/tables.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

bool CpuHasFp16Arithmetic() { return ncnn::cpu_support_arm_asimdhp() != 0; }

std::vector<std::string> Precisions() { return Names(kPrecisions); }

std::vector<std::string> LoadPrecisions() { return Names(kPrecisions, &PrecisionRow::load); }

RunPrecision ResolvePrecision(const std::string& exported, const Options& options) {
  const std::string asked = options.precision.empty() && options.fp16 ? NameOf(kPrecisions, Precision::kFp16)
                                                                       : options.precision;
  const PrecisionRow* as_exported = FindName(kPrecisions, exported);
  if (as_exported == nullptr) {
    throw Error("precision: the model's '" + exported + "' is not " + JoinNames(Precisions(), ", ", " or "));
  }
  // A precision that is not `load` runs only as exported (its layers carry their own weights and scales).
  const PrecisionRow* row = asked.empty() ? nullptr : FindName(kPrecisions, asked);
  if (!asked.empty() && (row == nullptr || (!row->load && row != as_exported))) {
    throw Error(row != nullptr ? "precision " + asked + ": this model.so was exported " + exported + "; " +
                                     row->exported_only
                               : "precision '" + asked + "' is not " + JoinNames(LoadPrecisions(), ", ", " or "));
  }
  // The layers that are not int8 follow the request; an int8 model runs them as native ncnn would (fp16 where
  // the CPU has it) unless asked otherwise.
  const bool int8 = as_exported->id == Precision::kInt8;
  const Precision rest = row == nullptr || !row->load ? (int8 ? Precision::kFp16 : as_exported->id) : row->id;
  RunPrecision run;
  run.fp16 = rest == Precision::kFp16 && CpuHasFp16Arithmetic();
  const std::string rest_name = NameOf(kPrecisions, run.fp16 ? Precision::kFp16 : Precision::kFp32);
  run.name = int8 ? as_exported->name + (run.fp16 ? "+" + rest_name : "") : rest_name;
  return run;
}

}  // namespace tvm_ncnn
