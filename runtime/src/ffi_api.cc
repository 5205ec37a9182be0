// The runtime as tvm-ffi global functions, for the Python SDK (tvm_ncnn.load) after it dlopens this library:
//
//   tvm_ncnn.model_load(path: str, threads: int, precision: str, trust: str) -> Module   (threads 0: detect big
//       cores; precision "": as exported; trust: Options::trust, "" for none)
//       module functions: run(*tensors) -> Array[Tensor], info_json() -> str, threads() -> int,
//       profile(runs: int, *tensors) -> Map {"runs", "run_ms", "table" (FormatProfile), "rows": Array[Map
//       {"name", "kind", "calls", "ms", "share", "ncnn_layers"}]} (Model::Profile),
//       preprocess_image(pixels: Tensor uint8 [H,W,C] any row stride, format: "RGB"|"BGR"|"RGBA"|"BGRA"|"GRAY")
//       -> Tensor (PreprocessImage), image_transform(width, height) -> Map of ImageTransform's fields (PlaceImage)
//   tvm_ncnn.load_image(path: str, info_json: str) -> Tensor   (as deploy_app preprocesses; info_json: the
//       metadata, e.g. from info_json())
//   tvm_ncnn.preprocess_pixels(pixels: Tensor, format: str, info_json: str) -> Map {"tensor", "transform"}
//       (PreprocessImage as the module's preprocess_image, for metadata without a loaded model)
//   tvm_ncnn.check_image_input(info_json: str)   (the model-side checks of PreprocessImage; raises in one line)
//   tvm_ncnn.versions() -> Map[str, str]  {"sdk", "tvm", "ncnn", "metadata_format"} (metadata_format: the
//       metadata JSON's format_version this runtime reads, which export writes)
//   tvm_ncnn.limits() -> Map[str, int]  {"max_threads"}
//   tvm_ncnn.tables() -> Map[str, Array[str]]  {"precisions", "load_precisions", "tasks", "layouts", "resize_modes"}:
//       the names of meta/tables.h in table order, which the Python SDK's tables must equal
//   tvm_ncnn.detect_threads() -> int
//   tvm_ncnn.top_k(output: Tensor, labels: Array[str], k: int) -> Map  {"kind", "description", "index",
//       "label", "score"} (ScoreTopK: the top-k deploy_app prints)
//
// Errors reach Python as RuntimeError carrying the runtime's one-line message.
#include <tvm/ffi/cast.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <algorithm>

#include "ffi_util.h"
#include "internal.h"
#include "meta/metadata.h"
#include "meta/tables.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;

// A view of t's bytes as pixels: uint8 [H, W, C] (C the format's channel count; [H, W] for GRAY) whose rows are
// contiguous, at any row stride -- a numpy view of part of a camera frame is read in place.
Pixels PixelsOf(const ffi::Tensor& t, const std::string& format) {
  static const std::pair<const char*, PixelFormat> kFormats[] = {{"RGB", PixelFormat::kRGB},
      {"BGR", PixelFormat::kBGR}, {"RGBA", PixelFormat::kRGBA}, {"BGRA", PixelFormat::kBGRA},
      {"GRAY", PixelFormat::kGray}};
  const auto* f = std::find_if(std::begin(kFormats), std::end(kFormats),
                               [&](const auto& kv) { return format == kv.first; });
  if (f == std::end(kFormats)) throw Error("pixels: format '" + format + "' is not RGB, BGR, RGBA, BGRA or GRAY");
  const int64_t ch = format == "GRAY" ? 1 : format.size();
  const std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
  if (t.device().device_type != kDLCPU) throw Error("pixels: not on the CPU");
  if (DTypeName(t.dtype()) != "uint8") throw Error("pixels: dtype is " + DTypeName(t.dtype()) + ", not uint8");
  if (!(shape.size() == 3 && shape[2] == ch) && !(shape.size() == 2 && ch == 1)) {
    throw Error("pixels: shape " + ShapeString(shape) + " is not [H,W," + std::to_string(ch) + "] for " + format);
  }
  if (shape[0] < 1 || shape[1] < 1 || shape[0] > INT32_MAX || shape[1] > INT32_MAX) {
    throw Error("pixels: shape " + ShapeString(shape) + " is not an image size");
  }
  // The stride of a dimension of size 1 means nothing (numpy leaves any value there).
  const std::vector<int64_t> strides(t.strides().begin(), t.strides().end());
  const bool row_ok = shape[0] == 1 || strides[0] >= shape[1] * ch;
  const bool pixel_ok = shape[1] == 1 || strides[1] == (shape.size() == 3 ? ch : 1);
  const bool channel_ok = shape.size() == 2 || strides[2] == 1;
  if (!row_ok || !pixel_ok || !channel_ok) {
    throw Error("pixels: strides " + ShapeString(strides) + " (elements) for shape " + ShapeString(shape) +
                ": each row's pixels must be contiguous");
  }
  Pixels p;
  p.data = static_cast<const uint8_t*>(t.data_ptr()) + t.byte_offset();
  p.height = static_cast<int>(shape[0]);
  p.width = static_cast<int>(shape[1]);
  p.format = f->second;
  p.stride = shape[0] == 1 ? 0 : static_cast<size_t>(strides[0]);
  return p;
}

ffi::Map<ffi::String, ffi::Any> TransformMap(const ImageTransform& t) {
  return {{"image_width", int64_t{t.image_width}}, {"image_height", int64_t{t.image_height}},
          {"resized_width", int64_t{t.resized_width}}, {"resized_height", int64_t{t.resized_height}},
          {"scale_x", t.scale_x}, {"scale_y", t.scale_y}, {"offset_x", t.offset_x}, {"offset_y", t.offset_y},
          {"input_width", int64_t{t.input_width}}, {"input_height", int64_t{t.input_height}}};
}

// A loaded Model behind the ffi Module interface. Not serializable: it only lives inside one process.
class ModelModuleObj : public ffi::ModuleObj {
 public:
  explicit ModelModuleObj(Model model) : model_(std::move(model)) {}

  const char* kind() const final { return "tvm_ncnn.model"; }
  int GetPropertyMask() const final { return ffi::Module::kRunnable; }

  ffi::Optional<ffi::Function> GetFunction(const ffi::String& name) final {
    // Each closure holds a reference so the model outlives any function handed out.
    ffi::ObjectPtr<ffi::Object> self = ffi::GetObjectPtr<ffi::Object>(this);
    if (name == "run") {
      return ffi::Function([self, this](ffi::PackedArgs args, ffi::Any* rv) { *rv = Run(args); });
    }
    if (name == "profile") {
      return ffi::Function([self, this](ffi::PackedArgs args, ffi::Any* rv) { *rv = Profile(args); });
    }
    if (name == "info_json") {
      return ffi::Function::FromTyped([self, this]() { return InfoJson(); });
    }
    if (name == "preprocess_image") {
      return ffi::Function::FromTyped([self, this](const ffi::Tensor& pixels, const ffi::String& format) {
        return PreprocessImageFfi(pixels, format);
      });
    }
    if (name == "image_transform") {
      return ffi::Function::FromTyped([self, this](int64_t width, int64_t height) {
        return ImageTransformFfi(width, height);
      });
    }
    if (name == "threads") {
      return ffi::Function::FromTyped([self, this]() { return static_cast<int64_t>(model_.threads()); });
    }
    return std::nullopt;
  }

 private:
  // Tensors args[first..] as the model's inputs; `what` names the function in errors.
  static std::vector<Tensor> Inputs(ffi::PackedArgs args, int first, const std::string& what) {
    std::vector<Tensor> inputs;
    for (int i = first; i < args.size(); ++i) {
      auto t = args[i].try_cast<ffi::Tensor>();
      if (!t.has_value()) {
        throw Error(what + ": argument " + std::to_string(i) + " is a " + args[i].GetTypeKey() + ", not a tensor");
      }
      inputs.push_back(FromFfiTensor(*t, what + ": argument " + std::to_string(i)));
    }
    return inputs;
  }

  // The caller's tensors (numpy arrays through DLPack) are read where they are -- in place when aligned, else
  // copied once into the execution context (Model::Run with views); `args` keeps them alive during the call. The
  // outputs' bytes become the returned tensors' (numpy reads them in place).
  ffi::Array<ffi::Tensor> Run(ffi::PackedArgs args) {
    try {
      std::vector<TensorView> inputs;
      for (int i = 0; i < args.size(); ++i) {
        const std::string what = "run: argument " + std::to_string(i);
        auto t = args[i].try_cast<ffi::Tensor>();
        if (!t.has_value()) throw Error(what + " is a " + args[i].GetTypeKey() + ", not a tensor");
        if (t->device().device_type != kDLCPU) throw Error(what + " is not on the CPU");
        if (!t->IsContiguous()) throw Error(what + " is not contiguous");
        const std::string dtype = DTypeName(t->dtype());
        try {
          DTypeSize(dtype);  // a dtype the runtime does not know is refused by name
        } catch (const Error& e) {
          throw Error(what + ": " + e.what());
        }
        inputs.emplace_back(static_cast<const char*>(t->data_ptr()) + t->byte_offset(),
                            std::vector<int64_t>(t->shape().begin(), t->shape().end()), dtype);
      }
      std::vector<Tensor> outputs;
      model_.Run(inputs, &outputs);
      ffi::Array<ffi::Tensor> out;
      for (Tensor& y : outputs) out.push_back(ToFfiTensor(std::move(y)));  // handed over, not copied
      return out;
    } catch (const Error& e) {
      TVM_FFI_THROW(RuntimeError) << e.what();
    }
  }

  ffi::Map<ffi::String, ffi::Any> Profile(ffi::PackedArgs args) {
    try {
      if (args.size() < 1 || !args[0].try_cast<int64_t>().has_value()) throw Error("profile: expects (runs, *inputs)");
      // Clamped into int range, to a value Profile still refuses when out of its range.
      const int64_t runs = std::clamp<int64_t>(args[0].cast<int64_t>(), 0, int64_t(kMaxProfileRuns) + 1);
      const ProfileReport report = model_.Profile(Inputs(args, 1, "profile"), static_cast<int>(runs));
      ffi::Array<ffi::Map<ffi::String, ffi::Any>> rows;
      for (const ProfileRow& r : report.rows) {
        rows.push_back({{"name", ffi::String(r.name)}, {"kind", ffi::String(r.kind)}, {"calls", r.calls},
                        {"ms", r.ms}, {"share", r.share}, {"ncnn_layers", static_cast<int64_t>(r.ncnn_layers)}});
      }
      return {{"runs", static_cast<int64_t>(report.runs)}, {"run_ms", report.run_ms}, {"rows", rows},
              {"table", ffi::String(FormatProfile(report))}};
    } catch (const Error& e) {
      TVM_FFI_THROW(RuntimeError) << e.what();
    }
  }

  ffi::Tensor PreprocessImageFfi(const ffi::Tensor& pixels, const ffi::String& format) {
    try {
      return ToFfiTensor(PreprocessImage(PixelsOf(pixels, std::string(format)), model_.info()));
    } catch (const Error& e) {
      TVM_FFI_THROW(RuntimeError) << e.what();
    }
  }

  ffi::Map<ffi::String, ffi::Any> ImageTransformFfi(int64_t width, int64_t height) {
    try {
      if (width < 1 || height < 1 || width > INT32_MAX || height > INT32_MAX) {
        throw Error("image: " + std::to_string(width) + "x" + std::to_string(height) + " is not an image size");
      }
      return TransformMap(PlaceImage(static_cast<int>(width), static_cast<int>(height), model_.info()));
    } catch (const Error& e) {
      TVM_FFI_THROW(RuntimeError) << e.what();
    }
  }

  // The metadata as stored, plus what this process chose at load time.
  ffi::String InfoJson() const {
    ffi::Map<ffi::Any, ffi::Any> doc = ffi::json::Parse(model_.info().json).cast<ffi::Map<ffi::Any, ffi::Any>>();
    doc.Set(ffi::String("threads"), static_cast<int64_t>(model_.threads()));
    doc.Set(ffi::String("fp16"), model_.fp16());
    doc.Set(ffi::String("run_precision"), ffi::String(model_.precision()));  // "precision" is the exported one
    doc.Set(ffi::String("signer"), ffi::String(model_.signer()));
    doc.Set(ffi::String("thread_policy"), ffi::String(model_.thread_policy()));  // Model::thread_policy  // the trusted key that verified it, or ""
    return ffi::json::Stringify(doc);
  }

  Model model_;
};

ffi::Module ModelLoad(const ffi::String& path, int64_t threads, const ffi::String& precision,
                      const ffi::String& trust) {
  try {
    CheckThreads(threads);
    Options options;
    options.threads = static_cast<int>(threads);
    options.precision = std::string(precision);
    options.trust = std::string(trust);
    return ffi::Module(ffi::make_object<ModelModuleObj>(Model::Load(std::string(path), options)));
  } catch (const Error& e) {
    TVM_FFI_THROW(RuntimeError) << e.what();
  }
}

ffi::Tensor LoadImageFfi(const ffi::String& path, const ffi::String& info_json) {
  try {
    return ToFfiTensor(LoadImage(std::string(path), ParseMetadata(std::string(info_json), "load_image: metadata")));
  } catch (const Error& e) {
    TVM_FFI_THROW(RuntimeError) << e.what();
  }
}

ffi::Map<ffi::String, ffi::Any> PreprocessPixelsFfi(const ffi::Tensor& pixels, const ffi::String& format,
                                                   const ffi::String& info_json) {
  try {
    const ModelInfo info = ParseMetadata(std::string(info_json), "preprocess_pixels: metadata");
    ImageTransform t;
    Tensor x = PreprocessImage(PixelsOf(pixels, std::string(format)), info, &t);
    return {{"tensor", ToFfiTensor(std::move(x))}, {"transform", TransformMap(t)}};
  } catch (const Error& e) {
    TVM_FFI_THROW(RuntimeError) << e.what();
  }
}

// The model-side checks of PreprocessImage on metadata (export runs them before writing model.so).
void CheckImageInputFfi(const ffi::String& info_json) {
  try {
    CheckImageInput(ParseMetadata(std::string(info_json), "metadata"), "preprocess");
  } catch (const Error& e) {
    TVM_FFI_THROW(RuntimeError) << e.what();
  }
}

ffi::Map<ffi::String, ffi::String> Versions() {
  return {{"sdk", SdkVersion()},
          {"tvm", TvmVersion()},
          {"ncnn", NcnnVersion()},
          {"metadata_format", std::to_string(kMetadataFormatVersion)}};
}

ffi::Map<ffi::String, int64_t> Limits() { return {{"max_threads", kMaxThreads}}; }

ffi::Map<ffi::String, ffi::Array<ffi::String>> Tables() {
  auto array = [](const std::vector<std::string>& names) {
    ffi::Array<ffi::String> out;
    for (const std::string& n : names) out.push_back(ffi::String(n));
    return out;
  };
  return {{"precisions", array(Names(kPrecisions))},
          {"load_precisions", array(Names(kPrecisions, &PrecisionRow::load))},
          {"tasks", array(Names(kTasks))},
          {"layouts", array(Names(kLayouts))},
          {"resize_modes", array(Names(kResizeModes))}};
}

ffi::Map<ffi::String, ffi::Any> TopKFfi(const ffi::Tensor& output, const ffi::Array<ffi::String>& labels, int64_t k) {
  try {
    std::vector<std::string> names(labels.begin(), labels.end());
    const TopK top = ScoreTopK(FromFfiTensor(output, "top_k: output"), names,
                                static_cast<int>(std::clamp<int64_t>(k, INT32_MIN, INT32_MAX)));
    ffi::Array<int64_t> index;
    ffi::Array<ffi::String> label;
    ffi::Array<double> score;
    for (const ScoredClass& c : top.classes) {
      index.push_back(c.index);
      label.push_back(c.label);
      score.push_back(c.score);
    }
    return {{"kind", ffi::String(top.kind)}, {"description", ffi::String(top.description)}, {"index", index},
            {"label", label}, {"score", score}};
  } catch (const Error& e) {
    TVM_FFI_THROW(RuntimeError) << e.what();
  }
}

}  // namespace
}  // namespace tvm_ncnn

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("tvm_ncnn.model_load", tvm_ncnn::ModelLoad)
      .def("tvm_ncnn.load_image", tvm_ncnn::LoadImageFfi)
      .def("tvm_ncnn.preprocess_pixels", tvm_ncnn::PreprocessPixelsFfi)
      .def("tvm_ncnn.check_image_input", tvm_ncnn::CheckImageInputFfi)
      .def("tvm_ncnn.versions", tvm_ncnn::Versions)
      .def("tvm_ncnn.limits", tvm_ncnn::Limits)
      .def("tvm_ncnn.tables", tvm_ncnn::Tables)
      .def("tvm_ncnn.top_k", tvm_ncnn::TopKFfi)
      .def("tvm_ncnn.detect_threads", []() { return static_cast<int64_t>(tvm_ncnn::DetectThreads()); });
}
