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
// without a seal passes); returns whether it had a valid seal. SealModel appends one (once: a valid seal is
// left as it is).
bool VerifySeal(const std::string& path, int64_t size, int64_t elf_end);
void SealModel(const std::string& path);

// Libraries (by the path they are dlopen'ed with) whose whole file this process checked against a valid seal just
// before loading them: data read in place from them (an ncnn region's weights) need no checksum of their own.
void NoteSealVerified(const std::string& abs_path);
bool SealVerified(const std::string& abs_path);

}  // namespace tvm_ncnn
