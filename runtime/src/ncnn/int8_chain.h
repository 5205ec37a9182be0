// int8 chains: an int8 convolution whose only reader is another int8 convolution hands it int8 instead of fp32.
//
// The exported int8 layers (int8_scale_term 1, sdk_python/tvm_ncnn/ncnn/quantize.py) each quantize their fp32 input
// and write fp32 output. Between two such layers that is a dequantize pass, an fp32 blob four times the size
// through memory, and a quantize pass -- measured on x86 (MobileNetV2, 1 thread) it cost more than the int8
// arithmetic saved, so int8 ran slower than fp32. ncnn's own requantize form (int8_scale_term > 100, the output
// scaled by the reader's input scale and rounded to int8 in the same pass as bias and activation) computes the
// same int8 values the reader would have made from the fp32 blob, so this is a speed change, not a precision one:
// nothing in model.so changes, the reader's input scale is already there.
#pragma once

#include <net.h>

#include <string>
#include <vector>

namespace tvm_ncnn {

// Switches every eligible producer of `net` (built: load_model done) to requantized int8 output; returns how many.
// Eligible: a Convolution or depthwise ConvolutionDepthWise with int8 weights and fp32 output, whose one top
// blob is read by exactly one layer, an int8 Convolution or depthwise ConvolutionDepthWise, and is not one of
// `outputs` (blob indices the region hands out as fp32). TVM_NCNN_INT8_CHAIN=0 in the environment turns it off
// (to measure what it buys, or to compare outputs).
int ChainInt8(ncnn::Net& net, const std::vector<int>& outputs);

}  // namespace tvm_ncnn
