// Detect for Python (tvm_ncnn.load(...).detect, tvm_ncnn/runtime/detect.py), the same implementation deploy_app runs:
//
//   tvm_ncnn.detect(outputs: Array[Tensor], info_json: str, transform: Map (ImageTransform's fields),
//                   score: float, iou: float, max_detections: int)   (< 0: the model's default)
//     -> Map {"boxes": float32 [n, 4] (x1, y1, x2, y2 image pixels), "scores": float32 [n], "classes": int64 [n],
//             "labels": Array[str], "keypoints": float32 [n, K, 3] (pose; x, y, visibility), "masks": Array of Map
//             {"x", "y", "width", "height", "area", "pixels": uint8 [height, width]} (segment)}
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <cstring>

#include "ffi_util.h"
#include "meta/metadata.h"
#include "meta/tables.h"
#include "tvm_ncnn/detect.h"

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;

double Field(const ffi::Map<ffi::String, ffi::Any>& m, const char* key) {
  auto it = m.find(ffi::String(key));
  if (it == m.end()) throw Error(std::string("detect: transform has no '") + key + "'");
  if (auto i = (*it).second.as<int64_t>()) return static_cast<double>(*i);
  if (auto d = (*it).second.as<double>()) return *d;
  throw Error(std::string("detect: transform '") + key + "' is not a number");
}

Tensor Floats(std::vector<int64_t> shape, const std::vector<float>& values) {
  Tensor t(std::move(shape), "float32");
  if (!values.empty()) std::memcpy(t.f32(), values.data(), values.size() * sizeof(float));
  return t;
}

ffi::Map<ffi::String, ffi::Any> DetectFfi(const ffi::Array<ffi::Tensor>& outputs, const ffi::String& info_json,
                                         const ffi::Map<ffi::String, ffi::Any>& where, double score, double iou,
                                         int64_t max_detections) {
  try {
    std::vector<Tensor> ys;
    for (size_t i = 0; i < outputs.size(); ++i) ys.push_back(FromFfiTensor(outputs[i], "output " + std::to_string(i)));
    const ModelInfo info = ParseMetadata(std::string(info_json), "detect: metadata");
    ImageTransform t;
    t.image_width = static_cast<int>(Field(where, "image_width"));
    t.image_height = static_cast<int>(Field(where, "image_height"));
    t.resized_width = static_cast<int>(Field(where, "resized_width"));
    t.resized_height = static_cast<int>(Field(where, "resized_height"));
    t.scale_x = Field(where, "scale_x");
    t.scale_y = Field(where, "scale_y");
    t.offset_x = Field(where, "offset_x");
    t.offset_y = Field(where, "offset_y");
    if (where.find(ffi::String("input_width")) != where.end()) {  // the input's size (a dynamic input's varies)
      t.input_width = static_cast<int>(Field(where, "input_width"));
      t.input_height = static_cast<int>(Field(where, "input_height"));
    }
    DetectOptions options;
    options.score = score;
    options.iou = iou;
    options.max_detections = static_cast<int>(std::max<int64_t>(-1, std::min<int64_t>(max_detections, 1 << 20)));
    const std::vector<Detection> found = Detect(ys, info, t, options);
    const bool segment = info.postprocess.task == NameOf(kTasks, Task::kSegment);

    const int64_t n = static_cast<int64_t>(found.size());
    const int64_t k = n ? static_cast<int64_t>(found[0].keypoints.size()) : 0;
    const int64_t r = n ? static_cast<int64_t>(found[0].rbox.size()) : 0;  // obb: 5
    std::vector<float> boxes, scores, keypoints, rboxes;
    Tensor classes({n}, "int64");
    ffi::Array<ffi::String> labels;
    ffi::Array<ffi::Map<ffi::String, ffi::Any>> masks;
    for (int64_t i = 0; i < n; ++i) {
      const Detection& d = found[i];
      boxes.insert(boxes.end(), {d.x1, d.y1, d.x2, d.y2});
      scores.push_back(d.score);
      reinterpret_cast<int64_t*>(classes.bytes.data())[i] = d.class_id;
      labels.push_back(d.label);
      for (const Keypoint& p : d.keypoints) keypoints.insert(keypoints.end(), {p.x, p.y, p.visibility});
      rboxes.insert(rboxes.end(), d.rbox.begin(), d.rbox.end());
      if (segment) {
        Tensor px({d.mask.height, d.mask.width}, "uint8");
        std::memcpy(px.bytes.data(), d.mask.pixels.data(), d.mask.pixels.size());
        masks.push_back({{"x", int64_t{d.mask.x}}, {"y", int64_t{d.mask.y}}, {"width", int64_t{d.mask.width}},
                         {"height", int64_t{d.mask.height}}, {"area", d.mask.area}, {"pixels", ToFfiTensor(px)}});
      }
    }
    return {{"boxes", ToFfiTensor(Floats({n, 4}, boxes))}, {"scores", ToFfiTensor(Floats({n}, scores))},
            {"classes", ToFfiTensor(classes)}, {"labels", labels},
            {"keypoints", ToFfiTensor(Floats({n, k, 3}, keypoints))}, {"masks", masks},
            {"rboxes", ToFfiTensor(Floats({n, r}, rboxes))}};
  } catch (const Error& e) {
    TVM_FFI_THROW(RuntimeError) << e.what();
  }
}

}  // namespace
}  // namespace tvm_ncnn

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def("tvm_ncnn.detect", tvm_ncnn::DetectFfi);
}
