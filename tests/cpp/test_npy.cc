// .npy: round trips for every dtype, files written the way numpy writes them, and every error case.
#include <sys/stat.h>

#include <cstring>
#include <initializer_list>

#include "check.h"

using tvm_ncnn::LoadNpy;
using tvm_ncnn::SaveNpy;
using tvm_ncnn::Tensor;

// A .npy file as numpy writes it: magic, version, header length, dict padded to 64 bytes, data.
static std::string NpyBytes(const std::string& dict, const std::string& data, int version = 1) {
  const size_t prefix = version == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(version);
  out += '\0';
  const uint32_t n = static_cast<uint32_t>(header.size());
  for (size_t i = 0; i < (version == 1 ? 2u : 4u); ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

static void RoundTrip(const std::string& dir, const std::vector<int64_t>& shape, const std::string& dtype) {
  Tensor t(shape, dtype);
  for (size_t i = 0; i < t.bytes.size(); ++i) t.bytes[i] = static_cast<uint8_t>(i * 37 + 11);
  const std::string path = dir + "/rt_" + dtype + "_" + std::to_string(shape.size()) + ".npy";
  SaveNpy(path, t);
  Tensor u = LoadNpy(path);
  CHECK(u.shape == t.shape);
  CHECK(u.dtype == t.dtype);
  CHECK(u.bytes == t.bytes);

  // numpy compatibility: data starts 64-byte aligned after a '\n'-terminated header.
  std::ifstream f(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t data_at = all.size() - t.bytes.size();
  CHECK(data_at % 64 == 0);
  CHECK(all[data_at - 1] == '\n');
  CHECK(all.find("'fortran_order': False") != std::string::npos);
}

int main() {
  const std::string dir = TempDir();

  for (const char* dtype : {"float32", "float64", "int32", "int64", "uint8"}) {
    RoundTrip(dir, {1, 3, 4, 5}, dtype);
    RoundTrip(dir, {7}, dtype);
    RoundTrip(dir, {}, dtype);
    RoundTrip(dir, {0, 3}, dtype);
  }
  {  // the 1-tuple must be written "(7,)", as Python spells it
    SaveNpy(dir + "/one.npy", Tensor({7}, "float32"));
    std::ifstream f(dir + "/one.npy", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(all.find("'shape': (7,)") != std::string::npos);
    CHECK(all.find("'descr': '<f4'") != std::string::npos);
  }
  {  // a file as numpy 1.x/2.x writes it: np.save(p, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    float vals[6] = {1, 2, 3, 4, 5, 6};
    const std::string data(reinterpret_cast<const char*>(vals), sizeof(vals));
    WriteFile(dir + "/np.npy", NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data));
    Tensor t = LoadNpy(dir + "/np.npy");
    CHECK((t.shape == std::vector<int64_t>{2, 3}));
    CHECK(t.dtype == "float32");
    CHECK(t.bytes.size() == 24 && std::memcmp(t.bytes.data(), vals, 24) == 0);

    WriteFile(dir + "/v2.npy", NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data, 2));
    Tensor v2 = LoadNpy(dir + "/v2.npy");
    CHECK((v2.shape == std::vector<int64_t>{6}));
    CHECK(v2.bytes.size() == 24 && std::memcmp(v2.bytes.data(), vals, 24) == 0);

    WriteFile(dir + "/u8.npy", NpyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", "abc"));
    CHECK(LoadNpy(dir + "/u8.npy").dtype == "uint8");
  }

  // Errors: each names the file and what is wrong.
  const std::string f4 = std::string(24, '\0');
  WriteFile(dir + "/fortran.npy", NpyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f4));
  CHECK_ERROR(LoadNpy(dir + "/fortran.npy"), "fortran.npy", "Fortran");
  WriteFile(dir + "/be.npy", NpyBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", f4));
  CHECK_ERROR(LoadNpy(dir + "/be.npy"), "be.npy", "big-endian");
  WriteFile(dir + "/short.npy", NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4.substr(5)));
  CHECK_ERROR(LoadNpy(dir + "/short.npy"), "short.npy", "truncated", "24", "19");
  WriteFile(dir + "/huge.npy", NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", f4));
  CHECK_ERROR(LoadNpy(dir + "/huge.npy"), "huge.npy", "truncated");
  WriteFile(dir + "/complex.npy", NpyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", f4));
  CHECK_ERROR(LoadNpy(dir + "/complex.npy"), "complex.npy", "unsupported dtype '<c8'");
  WriteFile(dir + "/v9.npy", NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4, 9));
  CHECK_ERROR(LoadNpy(dir + "/v9.npy"), "v9.npy", "version 9");
  const std::string whole = NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4.substr(12));
  WriteFile(dir + "/cut_header.npy", whole.substr(0, 30));
  CHECK_ERROR(LoadNpy(dir + "/cut_header.npy"), "cut_header.npy", "truncated");
  WriteFile(dir + "/noshape.npy", NpyBytes("{'descr': '<f4', 'fortran_order': False, }", f4));
  CHECK_ERROR(LoadNpy(dir + "/noshape.npy"), "noshape.npy", "shape");
  WriteFile(dir + "/text.npy", "hello, I am not an array\n");
  CHECK_ERROR(LoadNpy(dir + "/text.npy"), "text.npy", "not a .npy file");
  WriteFile(dir + "/empty.npy", "");
  CHECK_ERROR(LoadNpy(dir + "/empty.npy"), "empty.npy", "not a .npy file");
  CHECK_ERROR(LoadNpy(dir + "/missing.npy"), "missing.npy", "no such file");
  mkdir((dir + "/adir.npy").c_str(), 0755);
  CHECK_ERROR(LoadNpy(dir + "/adir.npy"), "adir.npy", "directory");
  CHECK_ERROR(SaveNpy(dir + "/adir.npy", Tensor({2}, "float32")), "adir.npy", "cannot write");
  CHECK_ERROR(SaveNpy(dir + "/nodir/x.npy", Tensor({2}, "float32")), "nodir/x.npy", "cannot write");
  Tensor bad({2, 2}, "float32");
  bad.bytes.resize(3);
  CHECK_ERROR(SaveNpy(dir + "/bad.npy", bad), "bad.npy", "[2,2]");

  return Finish("test_npy");
}
