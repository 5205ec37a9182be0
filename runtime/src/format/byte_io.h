// Little-endian byte writer/reader for the formats of runtime/FORMAT.md: the modules and the seal (private header).
//
// Every read is bounds-checked: a short or malformed blob raises tvm::ffi::Error (ValueError) naming
// `context` (e.g. "ncnn region 'fused_0'") and the field being read, never reads past the end.
#pragma once

#include <tvm/ffi/error.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tvm_ncnn {
namespace detail {

// The checksum that closes a version-2 module and seals a model.so (runtime/FORMAT.md, "Checksum"): four
// lanes, each lane = (lane ^ word) * kPrime over the little-endian u64 words of every 32-byte block (the last
// block zero-padded), then folded with the length. Each step is a bijection of the lane, so a change confined
// to one 8-byte word always changes the result: a flipped bit or byte is always found. Four independent lanes
// keep it at memory speed (a few ms for 20 MB of weights). Fed in pieces of any size (a file read in chunks).
class Checksum64 {
 public:
  void Update(const void* data, size_t size) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    total_ += size;
    if (pending_ > 0) {  // complete the block a previous piece started
      const size_t n = size < 32 - pending_ ? size : 32 - pending_;
      std::memcpy(block_ + pending_, p, n);
      pending_ += n, p += n, size -= n;
      if (pending_ < 32) return;
      Mix(block_);
      pending_ = 0;
    }
    for (; size >= 32; p += 32, size -= 32) Mix(p);
    std::memcpy(block_, p, size);
    pending_ = size;
  }
  uint64_t Final() {
    if (pending_ > 0) {
      std::memset(block_ + pending_, 0, 32 - pending_);
      Mix(block_);
      pending_ = 0;
    }
    uint64_t h = total_;
    for (int i = 0; i < 4; ++i) {
      h = (h ^ lane_[i]) * kPrime;
      h ^= h >> 29;
    }
    return h;
  }
  static uint64_t Of(const void* data, size_t size) {
    Checksum64 c;
    c.Update(data, size);
    return c.Final();
  }

 private:
  static constexpr uint64_t kPrime = 0x9e3779b97f4a7c15ull;  // odd: multiplying by it is a bijection
  void Mix(const unsigned char* b) {
    for (int i = 0; i < 4; ++i) {
      uint64_t v = 0;
      for (int k = 7; k >= 0; --k) v = (v << 8) | b[8 * i + k];
      lane_[i] = (lane_[i] ^ v) * kPrime;
    }
  }
  uint64_t lane_[4] = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull, 0x082efa98ec4e6c89ull};
  unsigned char block_[32] = {0};
  size_t pending_ = 0;
  uint64_t total_ = 0;
};

class ByteWriter {
 public:
  void U32(uint32_t v) { PutLE(v, 4); }
  void U64(uint64_t v) { PutLE(v, 8); }
  void I64(int64_t v) { PutLE(static_cast<uint64_t>(v), 8); }
  void Raw(const void* data, size_t size) { buf_.append(static_cast<const char*>(data), size); }
  // `str` and `bytes` fields: u64 length, then the bytes.
  void Str(std::string_view s) {
    U64(s.size());
    buf_.append(s.data(), s.size());
  }
  // Closes a version-2 module: the Checksum64 of everything written so far.
  void ChecksumTrailer() { U64(Checksum64::Of(buf_.data(), buf_.size())); }
  void Reserve(size_t n) { buf_.reserve(n); }
  std::string Take() { return std::move(buf_); }

 private:
  void PutLE(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string buf_;
};

class ByteReader {
 public:
  ByteReader(const char* data, size_t size, std::string context)
      : p_(reinterpret_cast<const unsigned char*>(data)), size_(size), context_(std::move(context)) {}

  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }
  size_t remaining() const { return size_ - pos_; }
  size_t position() const { return pos_; }

  // Reads n raw bytes (e.g. a magic) into a string.
  std::string Fixed(size_t n, const char* what) {
    Need(n, what);
    std::string out(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return out;
  }
  uint32_t U32(const char* what) { return static_cast<uint32_t>(GetLE(4, what)); }
  uint64_t U64(const char* what) { return GetLE(8, what); }
  int64_t I64(const char* what) { return static_cast<int64_t>(GetLE(8, what)); }

  // A `str`/`bytes` field; its length must fit in the remaining bytes and be <= max_len.
  std::string Str(const char* what, uint64_t max_len) {
    size_t n = 0;
    size_t offset = StrSpan(what, max_len, &n);
    return std::string(reinterpret_cast<const char*>(p_ + offset), n);
  }

  // Like Str, but returns the field's offset in the buffer instead of copying it (for big blobs).
  size_t StrSpan(const char* what, uint64_t max_len, size_t* length) {
    uint64_t n = U64(what);
    if (n > max_len) {
      TVM_FFI_THROW(ValueError) << context_ << ": " << what << " is " << n
                                << " bytes long, more than the limit of " << max_len
                                << " (corrupt or foreign data)";
    }
    if (n > remaining()) Truncated(what, n);
    size_t offset = pos_;
    pos_ += static_cast<size_t>(n);
    *length = static_cast<size_t>(n);
    return offset;
  }

  // Version-2 modules end with a u64 Checksum64 of every byte before it. Checks it, then limits the
  // reader to those bytes, so that the fields are parsed only from data known to be intact.
  void VerifyChecksumTrailer() {
    if (size_ < 8) Truncated("checksum", 8);
    const size_t body = size_ - 8;
    uint64_t stored = 0;
    for (int i = 7; i >= 0; --i) stored = (stored << 8) | p_[body + i];
    if (stored != Checksum64::Of(p_, body)) {
      TVM_FFI_THROW(ValueError) << context_ << ": checksum mismatch: the bytes changed after export "
                                << "(corrupt or modified model.so); copy it again or re-export it";
    }
    size_ = body;
  }

  // Fails unless every byte was consumed.
  void ExpectEnd() const {
    if (pos_ != size_) {
      TVM_FFI_THROW(ValueError) << context_ << ": " << (size_ - pos_)
                                << " unexpected trailing bytes after the last field (offset "
                                << pos_ << " of " << size_ << ")";
    }
  }

 private:
  [[noreturn]] void Truncated(const char* what, uint64_t n) const {
    TVM_FFI_THROW(ValueError) << context_ << ": truncated bytes: " << what << " needs " << n
                              << " bytes at offset " << pos_ << ", only " << remaining()
                              << " left";
    TVM_FFI_UNREACHABLE();
  }
  void Need(size_t n, const char* what) const {
    if (n > remaining()) Truncated(what, n);
  }
  uint64_t GetLE(int n, const char* what) {
    Need(static_cast<size_t>(n), what);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p_[pos_ + i]) << (8 * i);
    pos_ += static_cast<size_t>(n);
    return v;
  }

  const unsigned char* p_;
  size_t size_;
  size_t pos_ = 0;
  std::string context_;
};

}  // namespace detail
}  // namespace tvm_ncnn
