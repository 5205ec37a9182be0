// numpy's .npz without a zip library: numpy.load reads any zip whose entries are .npy files, and "stored"
// (uncompressed) entries need only the local headers, a CRC-32 each and the central directory.
#include "npz.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

namespace deploy_app {

namespace {

// Little-endian fields, as zip stores every number.
void Put16(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
}

void Put32(std::string* out, uint32_t v) {
  Put16(out, v & 0xffff);
  Put16(out, v >> 16);
}

constexpr uint32_t kVersion = 20;    // 2.0: the oldest reader that knows stored entries in directories
constexpr uint32_t kDosDate = 0x21;  // 1980-01-01, zip's epoch: the same bytes for the same outputs
constexpr uint64_t kZipLimit = 0xffffffffu;

// The .npy bytes of one tensor, through the runtime's own writer (one place knows the .npy header), by way of a
// temporary file: the runtime saves to paths only.
std::string NpyBytes(const tvm_ncnn::Tensor& tensor) {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/deploy_app-XXXXXX";
  const int fd = mkstemp(&path[0]);
  if (fd < 0) throw tvm_ncnn::Error("cannot create a temporary file '" + path + "' (" + std::strerror(errno) + ")");
  close(fd);
  std::string bytes;
  try {
    tvm_ncnn::SaveNpy(path, tensor);
    std::ifstream f(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  } catch (...) {
    std::remove(path.c_str());
    throw;
  }
  std::remove(path.c_str());
  return bytes;
}

}  // namespace

uint32_t Crc32(const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

std::string ZipStore(const std::vector<std::pair<std::string, std::string>>& entries) {
  if (entries.size() > 0xffff) throw tvm_ncnn::Error("a zip holds at most 65535 entries");
  std::string out, directory;
  for (const auto& [name, bytes] : entries) {
    if (name.empty() || name.size() > 0xffff) throw tvm_ncnn::Error("zip entry name '" + name + "' is empty or long");
    if (bytes.size() >= kZipLimit || out.size() >= kZipLimit) {
      throw tvm_ncnn::Error("zip entry '" + name + "' goes past 4 GB");
    }
    const uint32_t crc = Crc32(bytes.data(), bytes.size());
    const uint32_t offset = static_cast<uint32_t>(out.size());
    const uint32_t size = static_cast<uint32_t>(bytes.size());
    // Local file header, then the bytes as they are.
    Put32(&out, 0x04034b50);
    Put16(&out, kVersion);
    Put16(&out, 0);  // flags: sizes and CRC are in this header, no data descriptor follows
    Put16(&out, 0);  // method: stored
    Put16(&out, 0);  // time 00:00:00
    Put16(&out, kDosDate);
    Put32(&out, crc);
    Put32(&out, size);  // compressed size = size
    Put32(&out, size);
    Put16(&out, static_cast<uint32_t>(name.size()));
    Put16(&out, 0);  // no extra field
    out += name;
    out += bytes;
    // Its central directory record, written after all entries.
    Put32(&directory, 0x02014b50);
    Put16(&directory, kVersion);  // made by: MS-DOS attributes, version 2.0
    Put16(&directory, kVersion);
    Put16(&directory, 0);
    Put16(&directory, 0);
    Put16(&directory, 0);
    Put16(&directory, kDosDate);
    Put32(&directory, crc);
    Put32(&directory, size);
    Put32(&directory, size);
    Put16(&directory, static_cast<uint32_t>(name.size()));
    Put16(&directory, 0);  // extra
    Put16(&directory, 0);  // comment
    Put16(&directory, 0);  // disk
    Put16(&directory, 0);  // internal attributes
    Put32(&directory, 0);  // external attributes
    Put32(&directory, offset);
    directory += name;
  }
  if (out.size() + directory.size() >= kZipLimit) throw tvm_ncnn::Error("the zip goes past 4 GB");
  const uint32_t directory_offset = static_cast<uint32_t>(out.size());
  out += directory;
  // End of central directory: one disk, every entry on it.
  Put32(&out, 0x06054b50);
  Put16(&out, 0);
  Put16(&out, 0);
  Put16(&out, static_cast<uint32_t>(entries.size()));
  Put16(&out, static_cast<uint32_t>(entries.size()));
  Put32(&out, static_cast<uint32_t>(directory.size()));
  Put32(&out, directory_offset);
  Put16(&out, 0);  // no comment
  return out;
}

void SaveNpz(const std::string& path, const std::vector<std::pair<std::string, const tvm_ncnn::Tensor*>>& arrays) {
  std::vector<std::pair<std::string, std::string>> entries;
  try {
    for (const auto& [name, tensor] : arrays) entries.emplace_back(name + ".npy", NpyBytes(*tensor));
    const std::string zip = ZipStore(entries);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f.write(zip.data(), static_cast<std::streamsize>(zip.size())) || !f.flush()) {
      throw tvm_ncnn::Error(std::string("write failed (") + std::strerror(errno) + ")");
    }
  } catch (const tvm_ncnn::Error& e) {
    throw tvm_ncnn::Error("--output '" + path + "': " + e.what());
  }
}

}  // namespace deploy_app
