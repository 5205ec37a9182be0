// What model.so is checked for before dlopen (runtime/FORMAT.md, "Seal"): that it is a complete ELF shared
// library for this CPU (elf.cc), and that its seal, when it has one, matches its bytes (seal.cc).
#pragma once

#include <cstdint>
#include <string>

namespace tvm_ncnn {

// Throws Error unless path is a complete ELF shared library (for this CPU, unless for_this_machine is false);
// returns where its ELF image ends (what follows is the seal).
int64_t CheckElf(const std::string& path, int64_t file_size, bool for_this_machine = true);

// VerifySeal throws Error when the file has a seal that does not match its bytes, or a cut-off one (a file
// without a seal passes); SealModel appends one (once: a valid seal is left as it is).
void VerifySeal(const std::string& path, int64_t size, int64_t elf_end);
void SealModel(const std::string& path);

}  // namespace tvm_ncnn
