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

// Throws Error unless path is a complete ELF shared library (for this CPU, unless for_this_machine is false;
// model.cc); returns where its ELF image ends.
int64_t CheckElf(const std::string& path, int64_t file_size, bool for_this_machine = true);

// model.so's seal (seal.cc, FORMAT.md "Seal"). VerifySeal throws Error when the file has a seal that does not
// match its bytes, or a cut-off one (a file without a seal passes); SealModel appends one (once: a valid seal is
// left as it is).
void VerifySeal(const std::string& path, int64_t size, int64_t elf_end);
void SealModel(const std::string& path);

}  // namespace tvm_ncnn
