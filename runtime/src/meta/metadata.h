// A model.so's metadata: the JSON document its tvm_ncnn_meta module carries (runtime/FORMAT.md), read into a
// ModelInfo and compared with this runtime.
#pragma once

#include <cstdint>
#include <string>

#include <tvm/ffi/any.h>

#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// The JSON's "format_version" the SDK writes (it asks the runtime: tvm_ncnn.versions), and the oldest this runtime
// still reads. Not the module's own format version (format/module_header.h). Version 2 added preprocess.resize:
// a runtime that ignored it would stretch an image the model wants cropped or letterboxed, silently.
constexpr int64_t kMetadataFormatVersion = 3;
constexpr int64_t kOldestMetadataFormatVersion = 1;

// The metadata JSON -> ModelInfo (metadata.cc). Errors read "<where>: <field problem>". Does not compare
// versions with this runtime; VersionMismatch does.
ModelInfo ParseMetadata(const std::string& json, const std::string& where);

// The metadata's "postprocess" object (postprocess.cc). Throws Error naming the field when it is malformed.
Postprocess ParsePostprocess(const tvm::ffi::Any& object);

// "" when model.so was built by the versions this runtime has, else " was built with TVM X, but this runtime
// uses TVM Y; ..." for the first that differs (versions.cc).
std::string VersionMismatch(const ModelInfo& info);

// The metadata JSON found in model.so's bytes without loading it (TVM stores the module bytes as they are), or
// "" (module.cc). For when TVM cannot load the file: a model built by another TVM often fails inside TVM's own
// loader, and "built with TVM X, this runtime has Y" is the message that helps then.
std::string FindMetadataInFile(const std::string& path);

}  // namespace tvm_ncnn
