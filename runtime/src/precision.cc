// Which precision a model runs at: the one it was exported with (metadata "precision"), unless the caller
// overrides it at load, and fp16 only where the CPU has fp16 arithmetic -- as native ncnn decides per layer, so
// that a Pi 5 runs ncnn's fp16 kernels and a Pi 4 or an x86 machine the fp32 ones.
#include <string>

#include "cpu.h"  // ncnn
#include "internal.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

bool CpuHasFp16Arithmetic() { return ncnn::cpu_support_arm_asimdhp() != 0; }

RunPrecision ResolvePrecision(const std::string& exported, const Options& options) {
  std::string asked = options.precision;
  if (asked.empty() && options.fp16) asked = "fp16";
  const bool int8 = exported == "int8";
  if (!asked.empty() && asked != "fp32" && asked != "fp16" && !(asked == "int8" && int8)) {
    throw Error(asked == "int8" ? "precision int8: this model.so was exported " + exported +
                                      "; int8 needs calibration at export (tvm-ncnn export --precision int8 "
                                      "--calibration DIR)"
                                : "precision '" + asked + "' is not fp32 or fp16");
  }
  // The layers that are not int8 follow the request; an int8 model runs them as native ncnn would (fp16 where
  // the CPU has it) unless asked otherwise.
  std::string rest = asked.empty() || asked == "int8" ? (int8 ? "fp16" : exported) : asked;
  RunPrecision run;
  run.fp16 = rest == "fp16" && CpuHasFp16Arithmetic();
  run.name = int8 ? (run.fp16 ? "int8+fp16" : "int8") : (run.fp16 ? "fp16" : "fp32");
  return run;
}

}  // namespace tvm_ncnn
