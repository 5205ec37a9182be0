// deploy_app's .npz writer (deploy_app/npz.cc): zip's CRC-32 on its check value, the stored zip's records where
// the format puts them, and a saved .npz whose entries read back as the tensors. numpy.load reads the files in
// tests/python/test_output_names.py; this checks the bytes without Python.
#include <cstring>

#include "../../deploy_app/npz.cc"  // deploy_app is an executable: its one source file is compiled in here
#include "check.h"

using deploy_app::Crc32;
using deploy_app::SaveNpz;
using deploy_app::ZipStore;

static uint32_t U32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s.at(at + i));
  return v;
}

static uint32_t U16(const std::string& s, size_t at) {
  return static_cast<unsigned char>(s.at(at)) | (static_cast<unsigned char>(s.at(at + 1)) << 8);
}

static std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

int main() {
  const std::string dir = TempDir();
  CHECK(Crc32("123456789", 9) == 0xCBF43926u);  // the CRC-32 check value every implementation publishes
  CHECK(Crc32("", 0) == 0);

  // Two entries: local header (30 bytes + name) then data, each; the directory (46 + name each); the end record.
  const std::string zip = ZipStore({{"a.npy", "xyz"}, {"bb.npy", ""}});
  CHECK(U32(zip, 0) == 0x04034b50 && U16(zip, 8) == 0 && U32(zip, 14) == Crc32("xyz", 3));
  CHECK(U32(zip, 18) == 3 && U32(zip, 22) == 3 && U16(zip, 26) == 5 && zip.substr(30, 8) == "a.npyxyz");
  const size_t second = 30 + 5 + 3, directory = second + 30 + 6;
  CHECK(U32(zip, second) == 0x04034b50 && zip.substr(second + 30, 6) == "bb.npy");
  CHECK(U32(zip, directory) == 0x02014b50 && U32(zip, directory + 42) == 0 && zip.substr(directory + 46, 5) == "a.npy");
  CHECK(U32(zip, directory + 51) == 0x02014b50 && U32(zip, directory + 51 + 42) == second);
  const size_t end = zip.size() - 22;
  CHECK(U32(zip, end) == 0x06054b50 && U16(zip, end + 8) == 2 && U16(zip, end + 10) == 2);
  CHECK(U32(zip, end + 12) == end - directory && U32(zip, end + 16) == directory);
  CHECK_ERROR(ZipStore({{"", "x"}}), "empty");

  // A saved .npz: its first entry's data is the tensor's .npy, which the runtime reads back as the tensor.
  tvm_ncnn::Tensor boxes({1, 2, 4}, "float32"), count({1}, "int64");
  for (size_t i = 0; i < boxes.bytes.size(); ++i) boxes.bytes[i] = static_cast<uint8_t>(i * 7 + 1);
  count.bytes[0] = 2;
  SaveNpz(dir + "/out.npz", {{"boxes", &boxes}, {"count", &count}});
  const std::string saved = ReadFile(dir + "/out.npz");
  CHECK(saved.size() > 30 && U16(saved, 26) == 9 && saved.substr(30, 9) == "boxes.npy");
  const std::string npy = saved.substr(39, U32(saved, 18));
  CHECK(U32(saved, 14) == Crc32(npy.data(), npy.size()));
  WriteFile(dir + "/boxes.npy", npy);
  const tvm_ncnn::Tensor back = tvm_ncnn::LoadNpy(dir + "/boxes.npy");
  CHECK(back.shape == boxes.shape && back.dtype == "float32" && back.bytes == boxes.bytes);
  CHECK(saved.find("count.npy") != std::string::npos);
  CHECK_ERROR(SaveNpz(dir + "/missing/out.npz", {{"boxes", &boxes}}), "missing/out.npz");

  return Finish("test_npz");
}
