// The global functions the Python SDK calls: present, typed as documented, and failing with our message.
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

#include "check.h"
#include "tvm_ncnn/detect.h"

namespace ffi = tvm::ffi;

struct CpuAlloc {
  void AllocData(DLTensor* t) { t->data = std::malloc(ffi::GetDataSize(*t)); }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

int main() {
  // Referencing the library keeps the linker from dropping it; its static init registers the functions.
  const int detected = tvm_ncnn::DetectThreads();

  auto versions = ffi::Function::GetGlobal("tvm_ncnn.versions");
  auto detect = ffi::Function::GetGlobal("tvm_ncnn.detect_threads");
  auto load = ffi::Function::GetGlobal("tvm_ncnn.model_load");
  CHECK(versions.has_value());
  CHECK(detect.has_value());
  CHECK(load.has_value());
  if (!versions || !detect || !load) return Finish("test_ffi_api");

  auto v = (*versions)().cast<ffi::Map<ffi::String, ffi::String>>();
  CHECK(std::string(v.at("sdk")) == tvm_ncnn::SdkVersion());
  CHECK(std::string(v.at("tvm")) == tvm_ncnn::TvmVersion());
  CHECK(std::string(v.at("ncnn")) == tvm_ncnn::NcnnVersion());
  CHECK(std::string(v.at("metadata_format")) == "3");  // 2: preprocess.resize (FORMAT.md)
  CHECK((*detect)().cast<int64_t>() == detected);

  // The limits Python checks against, and the top-k `tvm-ncnn run` prints (ScoreTopK's, as deploy_app's).
  auto limits = ffi::Function::GetGlobal("tvm_ncnn.limits");
  auto top_k = ffi::Function::GetGlobal("tvm_ncnn.top_k");
  CHECK(limits.has_value() && top_k.has_value());
  if (limits) {
    using Limits = ffi::Map<ffi::String, int64_t>;
    CHECK((*limits)().cast<Limits>().at("max_threads") == tvm_ncnn::kMaxThreads);
  }
  if (top_k) {
    const int64_t shape[2] = {1, 3};
    ffi::Tensor t = ffi::Tensor::FromNDAlloc(CpuAlloc(), ffi::ShapeView(shape, 2), DLDataType{kDLFloat, 32, 1},
                                             DLDevice{kDLCPU, 0});
    float* p = static_cast<float*>(t.data_ptr());
    p[0] = 0.2f, p[1] = 0.5f, p[2] = 0.3f;
    auto r = (*top_k)(t, ffi::Array<ffi::String>{"a", "b", "c"}, 2).cast<ffi::Map<ffi::String, ffi::Any>>();
    CHECK(std::string(r.at("kind").cast<ffi::String>()) == "probabilities");
    auto index = r.at("index").cast<ffi::Array<int64_t>>();
    auto label = r.at("label").cast<ffi::Array<ffi::String>>();
    CHECK(index.size() == 2 && index[0] == 1 && index[1] == 2);
    CHECK(label.size() == 2 && std::string(label[0]) == "b");
  }

  // The name tables the Python SDK's tables must equal, keys and orders exactly (meta/tables.h).
  auto tables = ffi::Function::GetGlobal("tvm_ncnn.tables");
  CHECK(tables.has_value());
  if (tables) {
    auto t = (*tables)().cast<ffi::Map<ffi::String, ffi::Array<ffi::String>>>();
    auto names = [&](const char* key) {
      std::vector<std::string> out;
      for (const ffi::String& s : t.at(key)) out.push_back(std::string(s));
      return out;
    };
    using Names = std::vector<std::string>;
    CHECK(t.size() == 5);
    CHECK(names("precisions") == (Names{"fp32", "fp16", "int8"}));
    CHECK(names("load_precisions") == (Names{"fp32", "fp16"}));
    CHECK(names("tasks") == (Names{"classify", "detect", "segment", "pose", "obb"}));
    CHECK(names("layouts") == (Names{"yolov8", "yolov5", "yolox", "picodet", "end2end"}));
    CHECK(names("resize_modes") == (Names{"stretch", "crop", "letterbox", "height", "limit"}));
    // The public functions deploy_app reads them through.
    CHECK(tvm_ncnn::Precisions() == names("precisions"));
    CHECK(tvm_ncnn::LoadPrecisions() == names("load_precisions"));
    CHECK(tvm_ncnn::DetectorTasks() == (Names{"detect", "segment", "pose", "obb"}));
  }

  const std::string dir = TempDir();
  for (int64_t threads : {int64_t{0}, int64_t{-1}}) {
    try {
      (*load)(ffi::String(dir + "/missing.so"), threads, ffi::String(""), ffi::String(""));
      CHECK(!"model_load of a missing file did not throw");
    } catch (const ffi::Error& e) {
      CHECK(e.kind() == "RuntimeError");
      const std::string want = threads < 0 ? "threads" : "missing.so";
      if (e.message().find(want) == std::string::npos) {
        std::fprintf(stderr, "message \"%s\" lacks \"%s\"\n", e.message().c_str(), want.c_str());
        CHECK(false);
      }
    }
  }

  // load_image: the preprocessing deploy_app uses, for the Python SDK.
  auto load_image = ffi::Function::GetGlobal("tvm_ncnn.load_image");
  CHECK(load_image.has_value());
  if (load_image) {
    WriteFile(dir + "/red.bmp", SolidBmp(4, 4, 24, 255, 0, 0));
    const std::string info = R"({"format_version": 1, "tvm_version": "x", "inputs": [{"name": "in",
        "shape": [1, 3, 2, 2], "dtype": "float32"}], "outputs": [], "preprocess": {"mean": [0, 0, 0],
        "std": [255, 255, 255], "color": "BGR"}, "threads": 4})";
    auto t = (*load_image)(ffi::String(dir + "/red.bmp"), ffi::String(info)).cast<ffi::Tensor>();
    CHECK(t.ndim() == 4 && t.shape()[1] == 3 && t.shape()[2] == 2 && t.shape()[3] == 2);
    const float* p = static_cast<const float*>(t.data_ptr());
    CHECK(p[0] == 0.f && p[4] == 0.f && p[8] == 1.f);  // BGR: red is the last channel
    try {
      (*load_image)(ffi::String(dir + "/missing.png"), ffi::String(info));
      CHECK(!"load_image of a missing file did not throw");
    } catch (const ffi::Error& e) {
      CHECK(e.message().find("missing.png") != std::string::npos);
    }
  }
  return Finish("test_ffi_api");
}
