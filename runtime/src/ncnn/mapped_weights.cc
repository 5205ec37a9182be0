// Finding a region's weights symbol among the loaded libraries, and reading it in place (mapped_weights.h).
#include "ncnn/mapped_weights.h"

#include <tvm/ffi/error.h>

#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "format/byte_io.h"
#include "format/seal.h"
#include "internal.h"

namespace tvm_ncnn {
namespace {

// The path of every loaded object (the main program has none and is searched through dlopen(nullptr)).
std::vector<std::string> LoadedObjects() {
  std::vector<std::string> names;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        static_cast<std::vector<std::string>*>(out)->emplace_back(info->dlpi_name ? info->dlpi_name : "");
        return 0;
      },
      &names);
  return names;
}

// Checksum64 of the mapped bytes, releasing each chunk once summed: checking costs no resident memory.
uint64_t ChecksumReleasing(const MappedWeights& w) {
  detail::Checksum64 sum;
  constexpr size_t kChunk = size_t(1) << 20;  // a multiple of 32: Update keeps no partial block between chunks
  for (size_t at = 0; at < w.size(); at += kChunk) {
    const size_t n = std::min(kChunk, w.size() - at);
    sum.Update(w.data() + at, n);
    w.Release(at, at + n);
  }
  return sum.Final();
}

}  // namespace

MappedWeights::MappedWeights(const std::string& where, const std::string& symbol, uint64_t size,
                             uint64_t checksum) {
  std::string library;
  // Newest first: the model.so being loaded now was opened last.
  std::vector<std::string> objects = LoadedObjects();
  for (auto it = objects.rbegin(); it != objects.rend() && handle_ == nullptr; ++it) {
    void* h = dlopen(it->empty() ? nullptr : it->c_str(), RTLD_LAZY | RTLD_NOLOAD);  // +1 reference, no load
    if (h == nullptr) continue;
    void* addr = dlsym(h, symbol.c_str());
    Dl_info info{};
    ElfW(Sym)* sym = nullptr;
    if (addr != nullptr && dladdr1(addr, &info, reinterpret_cast<void**>(&sym), RTLD_DL_SYMENT) != 0 &&
        sym != nullptr && sym->st_size == size) {
      handle_ = h;
      data_ = static_cast<const unsigned char*>(addr);
      size_ = static_cast<size_t>(size);
      library = info.dli_fname ? info.dli_fname : "";
    } else {
      dlclose(h);
    }
  }
  if (handle_ == nullptr) {
    TVM_FFI_THROW(ValueError) << where << ": its weights (symbol " << symbol << ", " << size << " bytes) are not "
                              << "in any loaded library: a model.so exported with them links them in; re-export it";
  }
  if (!SealVerified(library) && ChecksumReleasing(*this) != checksum) {
    TVM_FFI_THROW(ValueError) << where << ": checksum mismatch in its weights (symbol " << symbol << " in '"
                              << library << "'): the file changed after export; copy it again or re-export it";
  }
}

MappedWeights::~MappedWeights() {
  if (handle_ != nullptr) dlclose(handle_);
}

void MappedWeights::Release(size_t begin, size_t end) const {
  const uintptr_t page = PageSize(), base = reinterpret_cast<uintptr_t>(data_);
  const uintptr_t from = (base + begin + page - 1) / page * page, to = (base + std::min(end, size_)) / page * page;
  if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
}

size_t ReleasingReader::read(void* buf, size_t size) const {
  if (last_flag_ > released_) {  // the weights before the previous flag are read and, where ncnn does, transformed
    w_.Release(released_, last_flag_);
    // Up to the page boundary at or before it: the partial page goes with the next release.
    const uintptr_t base = reinterpret_cast<uintptr_t>(w_.data()), page = PageSize();
    const uintptr_t boundary = (base + last_flag_) / page * page;
    if (boundary > base + released_) released_ = boundary - base;
  }
  last_flag_ = pos_;
  const size_t n = std::min(size, w_.size() - pos_);
  if (n) std::memcpy(buf, w_.data() + pos_, n);
  pos_ += n;
  return n;
}

size_t ReleasingReader::reference(size_t size, const void** buf) const {
  if (size > w_.size() - pos_) return 0;  // ncnn then falls back to read(), which reports the short read
  *buf = w_.data() + pos_;
  pos_ += size;
  return size;
}

void ReleasingReader::ReleaseAll() const { w_.Release(0, w_.size()); }

}  // namespace tvm_ncnn
