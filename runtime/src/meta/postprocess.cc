// The metadata's "postprocess" object -> Postprocess (runtime/FORMAT.md), parsed with the rest of the metadata
// (metadata.cc) so that post-processing a frame reads ModelInfo::postprocess instead of the JSON. A model.so
// without the object loads with task "".
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/string.h>

#include <optional>
#include <string>

#include "meta/metadata.h"
#include "meta/tables.h"

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;
using Obj = ffi::Map<ffi::Any, ffi::Any>;

[[noreturn]] void Bad(const std::string& what) { throw Error("metadata: postprocess." + what); }

std::optional<ffi::Any> Find(const Obj& obj, const char* key) {
  auto it = obj.find(ffi::String(key));
  if (it == obj.end()) return std::nullopt;
  return (*it).second;
}

double Number(const ffi::Any& v, const char* key) {
  if (auto i = v.as<int64_t>()) return static_cast<double>(*i);
  if (auto d = v.as<double>()) return *d;
  Bad(std::string(key) + " is not a number");
}

int SmallInt(const ffi::Any& v, const char* key, int lo, int hi) {
  auto i = v.as<int64_t>();
  if (!i.has_value() || *i < lo || *i > hi) {
    Bad(std::string(key) + " is not a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return static_cast<int>(*i);
}

}  // namespace

Postprocess ParsePostprocess(const ffi::Any& object) {
  Postprocess p;
  auto obj = object.as<Obj>();
  if (!obj.has_value()) throw Error("metadata: postprocess is not an object");
  if (auto v = Find(*obj, "task")) {
    auto s = (*v).as<ffi::String>();
    if (!s.has_value()) Bad("task is not a string");
    p.task = std::string(*s);
  }
  const TaskRow* task = FindName(kTasks, p.task);  // nullptr: none recorded ("")
  if (task == nullptr && !p.task.empty()) {
    Bad("task is '" + p.task + "', not " + JoinNames(Names(kTasks), ", ", " or "));
  }
  if (auto v = Find(*obj, "layout")) {
    auto s = (*v).as<ffi::String>();
    if (!s.has_value()) Bad("layout is not a string");
    p.layout = std::string(*s);
  }
  const bool boxes = task != nullptr && task->boxes;
  const LayoutRow* layout = FindName(kLayouts, p.layout);
  if (boxes && layout == nullptr) Bad("layout is '" + p.layout + "', not " + JoinNames(Names(kLayouts), ", ", " or "));
  if (boxes && task->extras && !layout->extras) {
    Bad("layout " + p.layout + " has no " + p.task + " outputs (only " +
        JoinNames(Names(kLayouts, &LayoutRow::extras), ", ", " or ") + " does)");
  }
  if (auto v = Find(*obj, "classes")) p.classes = SmallInt(*v, "classes", 1, 1 << 20);
  if (auto v = Find(*obj, "score")) p.score = Number(*v, "score");
  if (auto v = Find(*obj, "iou")) p.iou = Number(*v, "iou");
  if (!(p.score >= 0 && p.score <= 1)) Bad("score is not in 0..1");
  if (!(p.iou >= 0 && p.iou <= 1)) Bad("iou is not in 0..1");
  if (auto v = Find(*obj, "max_detections")) p.max_detections = SmallInt(*v, "max_detections", 1, 1 << 20);
  if (auto v = Find(*obj, "strides")) {
    auto list = (*v).as<ffi::Array<ffi::Any>>();
    if (!list.has_value()) Bad("strides is not a list");
    for (const ffi::Any& s : *list) p.strides.push_back(SmallInt(s, "strides[]", 1, 4096));
  }
  if (layout != nullptr && layout->strides && p.strides.empty()) Bad("strides is missing");
  if (auto v = Find(*obj, "keypoints")) {
    auto list = (*v).as<ffi::Array<ffi::Any>>();
    if (!list.has_value() || list->size() != 2) Bad("keypoints is not [count, dims]");
    p.keypoints = SmallInt((*list)[0], "keypoints[0]", 1, 100000);
    p.keypoint_dims = SmallInt((*list)[1], "keypoints[1]", 2, 3);
  }
  if (task != nullptr && task->id == Task::kPose && p.keypoints == 0) Bad("keypoints is missing for a pose model");
  if (boxes && p.classes == 0) Bad("classes is missing");
  return p;
}

}  // namespace tvm_ncnn
