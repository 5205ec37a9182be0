// Detect(): decode (decode.cc) -> class-aware NMS (nms.cc) -> boxes, keypoints and masks (masks.cc) in the
// original image's pixels through the ImageTransform the preprocessing reported (letterbox scale and padding).
#include <algorithm>
#include <cmath>

#include "detect/detect_internal.h"
#include "meta/tables.h"

namespace tvm_ncnn {
namespace {

// An oriented box in input pixels -> Detection::rbox in image pixels (centre through the transform, sides by its
// scale, as ultralytics' scale_boxes(xywh=True)) and x1..y2 its corners' bounding box, clipped to the image.
void OrientedBox(const detect::RotatedBox& r, const ImageTransform& t, Detection* d) {
  const float cx = static_cast<float>(t.ToImageX(r.cx)), cy = static_cast<float>(t.ToImageY(r.cy));
  const float w = static_cast<float>(r.w / t.scale_x), h = static_cast<float>(r.h / t.scale_y);
  d->rbox = {cx, cy, w, h, r.angle};
  const float c = std::cos(r.angle), s = std::sin(r.angle);
  const float half_x = (std::abs(w * c) + std::abs(h * s)) / 2, half_y = (std::abs(w * s) + std::abs(h * c)) / 2;
  const float iw = static_cast<float>(t.image_width), ih = static_cast<float>(t.image_height);
  d->x1 = std::clamp(cx - half_x, 0.f, iw);
  d->y1 = std::clamp(cy - half_y, 0.f, ih);
  d->x2 = std::clamp(cx + half_x, 0.f, iw);
  d->y2 = std::clamp(cy + half_y, 0.f, ih);
}

}  // namespace

std::vector<Detection> Detect(const std::vector<Tensor>& outputs, const ModelInfo& info,
                              const ImageTransform& transform, const DetectOptions& options) {
  const Postprocess& p = info.postprocess;
  const TaskRow* task = FindName(kTasks, p.task);
  if (task == nullptr || !task->boxes) {
    throw Error(p.task.empty() ? "detect: the model is not a detector (model.so records no task; export it with "
                                 "--task " + JoinNames(DetectorTasks(), "|", "|") + ")"
                               : "detect: the model is a " + p.task + " model, not a detector");
  }
  const double score = options.score >= 0 ? options.score : p.score;
  const double iou = options.iou >= 0 ? options.iou : p.iou;
  if (score > 1 || iou > 1) throw Error("detect: score and iou thresholds must be in 0..1");
  const int max_det = options.max_detections >= 0 ? options.max_detections : p.max_detections;
  if (transform.scale_x <= 0 || transform.scale_y <= 0) throw Error("detect: the image transform has no scale");

  // A dynamic input's H x W is this image's (the transform's): the decoders' grids and the masks take it from
  // the input's shape, so they get a copy of the input with that shape.
  const bool dynamic = !info.inputs.empty() && info.inputs[0].shape.size() == 4 && !info.inputs[0].dynamic.empty();
  ModelInfo sized;
  if (dynamic) {
    if (transform.input_width < 1 || transform.input_height < 1) {
      throw Error("detect: the model's input size varies with the image; the transform must say the input's size "
                  "(input_width, input_height, as PreprocessImage fills it)");
    }
    sized.inputs = {info.inputs[0]};
    sized.inputs[0].shape[2] = transform.input_height;
    sized.inputs[0].shape[3] = transform.input_width;
  }
  const ModelInfo& shaped = dynamic ? sized : info;

  detect::NmsRule rule;
  std::vector<detect::Candidate> candidates = detect::Decode(outputs, shaped, p, static_cast<float>(score), &rule);
  const bool obb = task->id == Task::kObb;
  if (obb && outputs[0].shape[1] != 4 + p.classes + 1) {
    throw Error("detect: output 0 has " + std::to_string(outputs[0].shape[1] - 4 - p.classes) +
                " channels after the classes; an obb model has one, the angle");
  }
  std::vector<detect::Candidate> kept =
      obb ? detect::RotatedNms(std::move(candidates), outputs[0], p.classes, static_cast<float>(iou), rule, max_det)
          : detect::Nms(std::move(candidates), static_cast<float>(iou), rule, max_det);

  const float w = static_cast<float>(transform.image_width), h = static_cast<float>(transform.image_height);
  auto image_x = [&](float x) { return std::clamp(static_cast<float>(transform.ToImageX(x)), 0.f, w); };
  auto image_y = [&](float y) { return std::clamp(static_cast<float>(transform.ToImageY(y)), 0.f, h); };

  // Extra channels (segment coefficients, pose keypoints) follow the classes, per anchor, in a layout with extras.
  const LayoutRow* layout = FindName(kLayouts, p.layout);
  const Tensor* y0 = layout != nullptr && layout->extras ? &outputs[0] : nullptr;
  const int64_t anchors = y0 ? y0->shape[2] : 0, extra = y0 ? y0->shape[1] - 4 - p.classes : 0;
  const Tensor* protos = nullptr;
  if (task->id == Task::kSegment) {
    if (outputs.size() < 2 || outputs[1].shape.size() != 4 || outputs[1].shape[1] != extra ||
        outputs[1].dtype != "float32") {
      throw Error("detect: a segment model needs prototypes [1, " + std::to_string(extra) +
                  ", H/4, W/4] float32 as output 1");
    }
    protos = &outputs[1];
  }
  if (task->id == Task::kPose && extra != static_cast<int64_t>(p.keypoints) * p.keypoint_dims) {
    throw Error("detect: output 0 has " + std::to_string(extra) + " channels after the classes, not " +
                std::to_string(p.keypoints) + " keypoints x " + std::to_string(p.keypoint_dims));
  }
  const int in_h = static_cast<int>(shaped.inputs[0].shape[2]), in_w = static_cast<int>(shaped.inputs[0].shape[3]);

  std::vector<Detection> found;
  found.reserve(kept.size());
  for (const detect::Candidate& c : kept) {
    Detection d;
    d.x1 = image_x(c.x1);
    d.y1 = image_y(c.y1);
    d.x2 = image_x(c.x2);
    d.y2 = image_y(c.y2);
    d.score = c.score;
    d.class_id = c.cls;
    if (c.cls >= 0 && static_cast<size_t>(c.cls) < info.labels.size()) d.label = info.labels[c.cls];
    const float* extras = y0 ? y0->f32() + (4 + p.classes) * anchors + c.anchor : nullptr;
    if (task->id == Task::kPose) {
      for (int k = 0; k < p.keypoints; ++k) {
        const float* kp = extras + static_cast<int64_t>(k) * p.keypoint_dims * anchors;
        Keypoint point;
        point.x = image_x(kp[0]);
        point.y = image_y(kp[anchors]);
        if (p.keypoint_dims == 3) point.visibility = kp[2 * anchors];
        d.keypoints.push_back(point);
      }
    }
    if (protos) d.mask = detect::InstanceMask(*protos, extras, anchors, d, transform, in_w, in_h);
    if (obb) OrientedBox(detect::RotatedOf(outputs[0], p.classes, c.anchor), transform, &d);
    found.push_back(std::move(d));
  }
  return found;
}

std::vector<std::string> DetectorTasks() { return Names(kTasks, &TaskRow::boxes); }

}  // namespace tvm_ncnn
