// int8 chains (int8_chain.h): set ncnn's requantize form on int8 convolutions that feed one int8 convolution.
#include "ncnn/int8_chain.h"

#include <layer.h>
#include <layer/convolution.h>
#include <layer/convolutiondepthwise.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace tvm_ncnn {
namespace {

// ncnn's marker: int8_scale_term above this means "the output is int8, scaled by top_blob_int8_scales".
constexpr int kRequantize = 100;

struct Int8Conv {
  int* scale_term = nullptr;           // int8_scale_term: 0 fp32, 1..100 int8 in / fp32 out
  ncnn::Mat* bottom_scales = nullptr;  // the scale its input is quantized with (one value; depthwise: per group)
  ncnn::Mat* top_scales = nullptr;     // what requantize multiplies the output by
  int groups = 1;                      // top_scales' length: ConvolutionDepthWise keeps one per group
};

// The int8 view of a Convolution or a depthwise ConvolutionDepthWise; scale_term null for anything else.
// Grouped (not depthwise) ConvolutionDepthWise is left out: ncnn builds its per-group sub-layers in
// create_pipeline from int8_scale_term as it was then, so changing it afterwards would not reach them.
Int8Conv View(ncnn::Layer* layer) {
  Int8Conv v;
  if (layer == nullptr) return v;
  if (layer->type == "Convolution") {
    auto* c = static_cast<ncnn::Convolution*>(layer);
    if (c->dynamic_weight) return v;
    v = {&c->int8_scale_term, &c->bottom_blob_int8_scales, &c->top_blob_int8_scales, 1};
  } else if (layer->type == "ConvolutionDepthWise") {
    auto* c = static_cast<ncnn::ConvolutionDepthWise*>(layer);
    const bool depthwise = c->group == c->num_output &&
                           c->weight_data_size == c->num_output * c->kernel_w * c->kernel_h;
    if (c->dynamic_weight || !depthwise) return v;
    v = {&c->int8_scale_term, &c->bottom_blob_int8_scales, &c->top_blob_int8_scales, c->group};
  }
  return v;
}

bool Int8InFp32Out(const Int8Conv& v) {
  return v.scale_term != nullptr && *v.scale_term > 0 && *v.scale_term <= kRequantize && !v.bottom_scales->empty();
}

bool Disabled() {
  const char* s = std::getenv("TVM_NCNN_INT8_CHAIN");
  return s != nullptr && std::strcmp(s, "0") == 0;
}

}  // namespace

int ChainInt8(ncnn::Net& net, const std::vector<int>& outputs) {
  if (Disabled()) return 0;
  const std::vector<ncnn::Layer*>& layers = net.layers();
  // readers[b]: the layers reading blob b (a layer reading it twice counts twice: then it is not "one reader").
  std::vector<std::vector<int>> readers(net.blobs().size());
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] == nullptr) continue;
    for (int b : layers[i]->bottoms) {
      if (b >= 0 && b < static_cast<int>(readers.size())) readers[b].push_back(static_cast<int>(i));
    }
  }
  int chained = 0;
  for (ncnn::Layer* layer : layers) {
    Int8Conv producer = View(layer);
    if (!Int8InFp32Out(producer) || layer->tops.size() != 1) continue;
    const int top = layer->tops[0];
    if (readers[top].size() != 1) continue;  // a Split, a region output read by TVM, ...
    if (std::find(outputs.begin(), outputs.end(), top) != outputs.end()) continue;
    Int8Conv reader = View(layers[readers[top][0]]);
    if (!Int8InFp32Out(reader)) continue;  // fp32 readers (Split, BinaryOp, Pooling) cannot take int8
    // Requantize = what the reader's quantize_to_int8 would do to the fp32 output: x * its input scale,
    // rounded and clamped to [-127, 127]; the scale is the same for every channel.
    const float scale = (*reader.bottom_scales)[0];
    ncnn::Mat scales(producer.groups);
    scales.fill(scale);
    *producer.top_scales = scales;
    *producer.scale_term += kRequantize;
    ++chained;
  }
  return chained;
}

}  // namespace tvm_ncnn
