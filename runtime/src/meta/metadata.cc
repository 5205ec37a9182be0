// The metadata JSON of a model.so -> ModelInfo. Every problem names the model file and the field.
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/string.h>

#include <climits>
#include <optional>
#include <string>
#include <vector>

#include "meta/metadata.h"
#include "meta/tables.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;

struct MetaReader {
  std::string where;  // "model 'x.so': metadata"

  [[noreturn]] void Bad(const std::string& what) const { throw Error(where + ": " + what); }

  ffi::Optional<ffi::Any> Find(const ffi::Map<ffi::Any, ffi::Any>& obj, const char* key) const {
    auto it = obj.find(ffi::String(key));
    if (it == obj.end()) return std::nullopt;
    return (*it).second;
  }
  ffi::Any Need(const ffi::Map<ffi::Any, ffi::Any>& obj, const char* key) const {
    auto v = Find(obj, key);
    if (!v.has_value()) Bad(std::string("field '") + key + "' is missing");
    return *v;
  }
  std::string Str(const ffi::Any& v, const std::string& field) const {
    auto s = v.as<ffi::String>();
    if (!s.has_value()) Bad("field '" + field + "' is not a string");
    return std::string(*s);
  }
  int64_t Int(const ffi::Any& v, const std::string& field) const {
    auto i = v.as<int64_t>();
    if (!i.has_value()) Bad("field '" + field + "' is not an integer");
    return *i;
  }
  double Number(const ffi::Any& v, const std::string& field) const {
    if (auto i = v.as<int64_t>()) return static_cast<double>(*i);
    if (auto d = v.as<double>()) return *d;
    Bad("field '" + field + "' is not a number");
  }
  ffi::Array<ffi::Any> List(const ffi::Any& v, const std::string& field) const {
    auto a = v.as<ffi::Array<ffi::Any>>();
    if (!a.has_value()) Bad("field '" + field + "' is not a list");
    return *a;
  }
  ffi::Map<ffi::Any, ffi::Any> Obj(const ffi::Any& v, const std::string& field) const {
    auto m = v.as<ffi::Map<ffi::Any, ffi::Any>>();
    if (!m.has_value()) Bad("field '" + field + "' is not an object");
    return *m;
  }
  std::string OptStr(const ffi::Map<ffi::Any, ffi::Any>& obj, const char* key) const {
    auto v = Find(obj, key);
    return v.has_value() ? Str(*v, key) : std::string();
  }

  std::vector<TensorInfo> Tensors(const ffi::Map<ffi::Any, ffi::Any>& root, const char* key) const {
    std::vector<TensorInfo> out;
    ffi::Array<ffi::Any> list = List(Need(root, key), key);
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string field = std::string(key) + "[" + std::to_string(i) + "]";
      ffi::Map<ffi::Any, ffi::Any> t = Obj(list[i], field);
      TensorInfo info;
      info.name = Str(Need(t, "name"), field + ".name");
      info.dtype = Str(Need(t, "dtype"), field + ".dtype");
      try {
        DTypeSize(info.dtype);
      } catch (const Error&) {
        Bad(field + " '" + info.name + "' has unsupported dtype '" + info.dtype + "'");
      }
      for (const ffi::Any& d : List(Need(t, "shape"), field + ".shape")) {
        int64_t dim = Int(d, field + ".shape");
        if ((dim < 1 && dim != -1) || dim > INT32_MAX) Bad(field + " '" + info.name + "' has a bad dimension");
        info.shape.push_back(dim);
      }
      if (auto dyn = Find(t, "dynamic")) info.dynamic = Dynamic(*dyn, field, info);
      // An input's -1 needs its rule; an output's size follows the inputs'.
      for (size_t axis = 0; std::string(key) == "inputs" && axis < info.shape.size(); ++axis) {
        if (info.shape[axis] == -1 && info.Dynamic(static_cast<int>(axis)) == nullptr) {
          Bad(field + " '" + info.name + "' has a dynamic dimension (axis " + std::to_string(axis) +
              ") that its 'dynamic' list does not describe");
        }
      }
      out.push_back(std::move(info));
    }
    return out;
  }

  // A tensor's "dynamic" list: [{"axis", "name", "multiple", "min", "max"}], one per -1 in its shape.
  std::vector<DynamicDim> Dynamic(const ffi::Any& v, const std::string& field, const TensorInfo& t) const {
    TensorInfo seen;  // the axes read so far
    const ffi::Array<ffi::Any> list = List(v, field + ".dynamic");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string f = field + ".dynamic[" + std::to_string(i) + "]";
      const ffi::Map<ffi::Any, ffi::Any> d = Obj(list[i], f);
      DynamicDim dim;
      const int64_t axis = Int(Need(d, "axis"), f + ".axis");
      if (axis < 0 || axis >= static_cast<int64_t>(t.shape.size()) || t.shape[axis] != -1 ||
          seen.Dynamic(static_cast<int>(axis)) != nullptr) {
        Bad("field '" + f + ".axis' is " + std::to_string(axis) + ", not a dimension of " + ShapeString(t.shape) +
            " that is -1 and listed once");
      }
      dim.axis = static_cast<int>(axis);
      dim.name = OptStr(d, "name");
      dim.max = INT32_MAX;
      if (auto m = Find(d, "multiple")) dim.multiple = Int(*m, f + ".multiple");
      if (auto m = Find(d, "min")) dim.min = Int(*m, f + ".min");
      if (auto m = Find(d, "max")) dim.max = Int(*m, f + ".max");
      if (dim.multiple < 1 || dim.min < 1 || dim.max < dim.min || dim.max > INT32_MAX) {
        Bad("field '" + f + "' has multiple " + std::to_string(dim.multiple) + ", min " + std::to_string(dim.min) +
            ", max " + std::to_string(dim.max) + ": not 1 <= min <= max <= 2^31-1 with multiple >= 1");
      }
      seen.dynamic.push_back(dim);
    }
    return seen.dynamic;
  }

  std::vector<float> Floats3(const ffi::Map<ffi::Any, ffi::Any>& pp, const char* key, float fill) const {
    auto v = Find(pp, key);
    if (!v.has_value()) return {fill, fill, fill};
    const std::string field = std::string("preprocess.") + key;
    std::vector<float> out;
    for (const ffi::Any& x : List(*v, field)) out.push_back(static_cast<float>(Number(x, field)));
    if (out.size() != 3) Bad("field '" + field + "' needs 3 values, has " + std::to_string(out.size()));
    return out;
  }

  // How the image is fitted to the input (format 2 on); a model.so without the field stretches, as before.
  void Resize(const ffi::Map<ffi::Any, ffi::Any>& p, Preprocess* pp) const {
    if (auto r = Find(p, "resize")) pp->resize = Str(*r, "preprocess.resize");
    const ResizeRow* mode = FindName(kResizeModes, pp->resize);
    if (mode == nullptr) {
      Bad("field 'preprocess.resize' is '" + pp->resize + "', not " + JoinNames(Names(kResizeModes), ", ", " or "));
    }
    if (mode->id == ResizeMode::kCrop) {
      if (auto c = Find(p, "crop_pct")) pp->crop_pct = Number(*c, "preprocess.crop_pct");
      if (!(pp->crop_pct >= 0.01 && pp->crop_pct <= 1)) {
        Bad("field 'preprocess.crop_pct' is " + std::to_string(pp->crop_pct) + ", not in 0.01..1");
      }
    } else if (mode->id == ResizeMode::kLetterbox) {
      if (auto v = Find(p, "pad")) {
        const int64_t pad = Int(*v, "preprocess.pad");
        if (pad < 0 || pad > 255) Bad("field 'preprocess.pad' is " + std::to_string(pad) + ", not 0..255");
        pp->pad = static_cast<int>(pad);
      }
      // Format 3 on; absent: centred, as every letterbox before it.
      if (auto v = Find(p, "anchor")) {
        const std::string anchor = Str(*v, "preprocess.anchor");
        if (anchor != "center" && anchor != "topleft") {
          Bad("field 'preprocess.anchor' is '" + anchor + "', not center or topleft");
        }
        pp->letterbox_topleft = anchor == "topleft";
      }
    } else if (mode->id == ResizeMode::kHeight) {
      if (auto v = Find(p, "pad")) {
        pp->fill = Number(*v, "preprocess.pad");
        if (!(pp->fill >= 0 && pp->fill <= 255)) Bad("field 'preprocess.pad' is not a pixel value 0..255");
      }
      pp->min_width = Size(p, "min_width");
      pp->max_width = Size(p, "max_width");
    } else if (mode->id == ResizeMode::kLimit) {
      if (auto v = Find(p, "limit")) pp->limit = Str(*v, "preprocess.limit");
      if (pp->limit != "min" && pp->limit != "max") {
        Bad("field 'preprocess.limit' is '" + pp->limit + "', not min or max");
      }
    }
    // Dynamic inputs' sizes (letterbox, height, limit); 0 when absent (a static input's letterbox).
    pp->size = Size(p, "size");
    pp->stride = Size(p, "stride");
  }

  // An optional size field: a whole number 1..2^31-1, or 0 when absent.
  int64_t Size(const ffi::Map<ffi::Any, ffi::Any>& p, const char* key) const {
    auto v = Find(p, key);
    if (!v.has_value()) return 0;
    const std::string field = std::string("preprocess.") + key;
    const int64_t n = Int(*v, field);
    if (n < 1 || n > INT32_MAX) Bad("field '" + field + "' is " + std::to_string(n) + ", not a size 1..2^31-1");
    return n;
  }

  ModelInfo Parse(const std::string& json) const {
    ffi::String err;
    ffi::Any doc = ffi::json::Parse(ffi::String(json), &err);
    if (!err.empty()) Bad("invalid JSON (" + std::string(err) + ")");
    ffi::Map<ffi::Any, ffi::Any> root = Obj(doc, "<document>");

    // Version checks come first: a newer format may have changed everything below.
    const int64_t format = Int(Need(root, "format_version"), "format_version");
    if (format < kOldestMetadataFormatVersion || format > kMetadataFormatVersion) {
      Bad("format_version " + std::to_string(format) + " is not supported by this runtime (it reads versions " +
          std::to_string(kOldestMetadataFormatVersion) + " to " + std::to_string(kMetadataFormatVersion) + ")");
    }
    ModelInfo info;
    info.json = json;
    info.tvm_version = Str(Need(root, "tvm_version"), "tvm_version");
    info.sdk_version = OptStr(root, "sdk_version");
    info.ncnn_version = OptStr(root, "ncnn_version");
    info.target = OptStr(root, "target");
    info.triple = OptStr(root, "triple");
    info.inputs = Tensors(root, "inputs");
    info.outputs = Tensors(root, "outputs");
    if (auto pp = Find(root, "preprocess")) {
      ffi::Map<ffi::Any, ffi::Any> p = Obj(*pp, "preprocess");
      info.preprocess.mean = Floats3(p, "mean", 0.f);
      info.preprocess.std = Floats3(p, "std", 1.f);
      for (float s : info.preprocess.std) {
        if (s == 0.f) Bad("field 'preprocess.std' has a zero");
      }
      if (auto c = Find(p, "color")) info.preprocess.color = Str(*c, "preprocess.color");
      if (info.preprocess.color != "RGB" && info.preprocess.color != "BGR") {
        Bad("field 'preprocess.color' is '" + info.preprocess.color + "', not RGB or BGR");
      }
      Resize(p, &info.preprocess);
    }
    if (auto labels = Find(root, "labels")) {
      for (const ffi::Any& l : List(*labels, "labels")) info.labels.push_back(Str(l, "labels[]"));
    }
    if (auto pp = Find(root, "postprocess")) info.postprocess = ParsePostprocess(*pp);
    if (auto n = Find(root, "ncnn_regions")) info.ncnn_regions = static_cast<int>(Int(*n, "ncnn_regions"));
    if (auto d = Find(root, "direct_region")) info.direct_region = Str(*d, "direct_region");
    // Absent before export recorded it: those files ran fp32 unless asked at load, and still do.
    if (auto p = Find(root, "precision")) info.precision = Str(*p, "precision");
    if (FindName(kPrecisions, info.precision) == nullptr) {
      Bad("field 'precision' is '" + info.precision + "', not " + JoinNames(Names(kPrecisions), ", ", " or "));
    }
    return info;
  }
};

}  // namespace

ModelInfo ParseMetadata(const std::string& json, const std::string& where) { return MetaReader{where}.Parse(json); }

}  // namespace tvm_ncnn
