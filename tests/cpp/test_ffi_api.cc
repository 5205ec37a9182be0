// The global functions the Python SDK calls: present, typed as documented, and failing with our message.
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <initializer_list>

#include "check.h"

namespace ffi = tvm::ffi;

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
  CHECK((*detect)().cast<int64_t>() == detected);

  const std::string dir = TempDir();
  for (int64_t threads : {int64_t{0}, int64_t{-1}}) {
    try {
      (*load)(ffi::String(dir + "/missing.so"), threads, false);
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
