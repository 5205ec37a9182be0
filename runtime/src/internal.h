// Helpers shared by the runtime's .cc files; not part of the public API.
#pragma once

#include <cstdint>
#include <string>

#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// Throws Error("<what> '<path>': <reason>") unless path is an existing, readable regular file.
// Returns its size in bytes (io/files.cc).
int64_t CheckReadableFile(const std::string& path, const char* what);

// The system's memory page size (platform.cc): page-aligned views and page release (io/zero_copy.cc,
// ncnn/mapped_weights.cc).
uintptr_t PageSize();

// Throws Error unless threads is 0 (detect) or 1..kMaxThreads (model.cc).
void CheckThreads(int64_t threads);

// The precision a model runs at (precision.cc): `name` as Model::precision() reports it, and whether ncnn's fp16
// storage/arithmetic options are on. Throws Error for a precision the model cannot run at.
struct RunPrecision {
  std::string name;  // set by ResolvePrecision from the names of meta/tables.h kPrecisions
  bool fp16 = false;
};
RunPrecision ResolvePrecision(const std::string& exported, const Options& options);

// Images (image/preprocess.cc): the model-side checks of PreprocessImage, which LoadImage runs before decoding,
// and PreprocessImage with `where` ("image 'x.jpg'") starting its messages.
void CheckImageInput(const ModelInfo& info, const std::string& where);
Tensor PreprocessPixels(const Pixels& pixels, const ModelInfo& info, ImageTransform* transform,
                        const std::string& where);

// model.so carries its modules as one blob in its read-only data; once TVM's loader has read them, its pages
// are handed back to the kernel (library_pages.cc).
void ReleaseLibraryBlobPages(const std::string& abs_path);

}  // namespace tvm_ncnn
