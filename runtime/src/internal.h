// Helpers shared by the runtime's .cc files; not part of the public API.
#pragma once

#include <cstdint>
#include <string>

#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

// The metadata JSON of a model.so -> ModelInfo (model.cc). Errors read "<where>: <field problem>".
// Does not compare versions with this runtime; Model::Load does.
ModelInfo ParseMetadata(const std::string& json, const std::string& where);

// Throws Error("<what> '<path>': <reason>") unless path is an existing, readable regular file.
// Returns its size in bytes.
int64_t CheckReadableFile(const std::string& path, const char* what);

}  // namespace tvm_ncnn
