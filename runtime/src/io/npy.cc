// .npy read/write (numpy format v1/v2/v3, https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
// Only little-endian, C-order arrays: that is what every tensor of this runtime is, so nothing is converted.
#include "tvm_ncnn/runtime.h"

#include "internal.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace tvm_ncnn {
namespace {

// numpy 'descr' (without the byte-order character) <-> our dtype names.
const struct {
  const char* descr;
  const char* dtype;
} kDescr[] = {{"f4", "float32"}, {"f8", "float64"}, {"i4", "int32"}, {"i8", "int64"}, {"u1", "uint8"},
              {"f2", "float16"}, {"i1", "int8"},    {"i2", "int16"}, {"u2", "uint16"}, {"b1", "bool"}};

[[noreturn]] void Fail(const std::string& path, const std::string& what) {
  throw Error(".npy file '" + path + "': " + what);
}

// The value text after 'key': in the header dict, e.g. "'<f4'" or "(1, 3)". Empty if absent.
std::string DictValue(const std::string& header, const std::string& key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return "";
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) return "";
  size_t start = header.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) return "";
  size_t end;
  if (header[start] == '(') {
    end = header.find(')', start);
    if (end == std::string::npos) return "";
    ++end;
  } else if (header[start] == '\'' || header[start] == '"') {
    end = header.find(header[start], start + 1);
    if (end == std::string::npos) return "";
    ++end;
  } else {
    end = header.find_first_of(",}", start);
    if (end == std::string::npos) return "";
  }
  return header.substr(start, end - start);
}

std::vector<int64_t> ParseShape(const std::string& path, const std::string& text) {
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') Fail(path, "bad shape in .npy header");
  std::vector<int64_t> shape;
  std::string inner = text.substr(1, text.size() - 2);
  size_t pos = 0;
  while (pos < inner.size()) {
    size_t comma = inner.find(',', pos);
    std::string item = inner.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
    if (b != std::string::npos) {
      item = item.substr(b, e - b + 1);
      char* endp = nullptr;
      errno = 0;
      long long v = std::strtoll(item.c_str(), &endp, 10);
      if (errno || *endp != '\0' || v < 0) Fail(path, "bad dimension '" + item + "' in .npy shape " + text);
      shape.push_back(v);
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return shape;
}

std::string DTypeFromDescr(const std::string& path, const std::string& quoted) {
  if (quoted.size() < 4) Fail(path, "bad dtype " + quoted + " in .npy header");
  std::string descr = quoted.substr(1, quoted.size() - 2);  // strip quotes
  char order = descr[0];
  std::string code = descr.substr(1);
  bool one_byte = code == "u1" || code == "i1" || code == "b1";
  if (order == '>' && !one_byte) {
    Fail(path, "big-endian data ('" + descr + "') is not supported; save it little-endian");
  }
  if (order != '<' && order != '|' && order != '=' && !(order == '>' && one_byte)) {
    Fail(path, "unsupported dtype '" + descr + "'");
  }
  for (const auto& e : kDescr) {
    if (code == e.descr) return e.dtype;
  }
  Fail(path, "unsupported dtype '" + descr + "' (supported: float32, float64, int32, int64, uint8)");
}

}  // namespace

Tensor LoadNpy(const std::string& path) {
  const int64_t file_size = CheckReadableFile(path, ".npy file");
  std::ifstream f(path, std::ios::binary);
  if (!f) Fail(path, std::string("cannot open: ") + std::strerror(errno));

  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) Fail(path, "not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!f.read(reinterpret_cast<char*>(b), 2)) Fail(path, "truncated .npy header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!f.read(reinterpret_cast<char*>(b), 4)) Fail(path, "truncated .npy header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    Fail(path, "unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > file_size) Fail(path, "truncated .npy header");
  std::string header(header_len, '\0');
  if (!f.read(&header[0], header_len)) Fail(path, "truncated .npy header");

  std::string fortran = DictValue(header, "fortran_order");
  if (fortran == "True") Fail(path, "Fortran-order arrays are not supported; save with np.ascontiguousarray");
  if (fortran != "False") Fail(path, "bad .npy header (fortran_order)");
  std::string descr = DictValue(header, "descr");
  if (descr.empty()) Fail(path, "bad .npy header (descr)");
  std::string dtype = DTypeFromDescr(path, descr);
  std::string shape_text = DictValue(header, "shape");
  if (shape_text.empty()) Fail(path, "bad .npy header (shape)");
  std::vector<int64_t> shape = ParseShape(path, shape_text);

  // Check the size against the file before allocating: a header can claim any shape.
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d != 0 && numel > (int64_t{1} << 40) / d) Fail(path, "shape " + ShapeString(shape) + " is too large");
    numel *= d;
  }
  const int64_t need = numel * static_cast<int64_t>(DTypeSize(dtype));
  const int64_t have = file_size - static_cast<int64_t>(f.tellg());
  if (have < need) {
    Fail(path, "truncated: shape " + ShapeString(shape) + " " + dtype + " needs " + std::to_string(need) +
                   " data bytes, the file has " + std::to_string(have));
  }
  Tensor t(shape, dtype);
  if (need > 0 && !f.read(reinterpret_cast<char*>(t.bytes.data()), need)) Fail(path, "read error");
  return t;
}

void SaveNpy(const std::string& path, const Tensor& tensor) {
  std::string code;
  for (const auto& e : kDescr) {
    if (tensor.dtype == e.dtype) code = e.descr;
  }
  if (code.empty()) Fail(path, "cannot save dtype '" + tensor.dtype + "' as .npy");
  if (tensor.bytes.size() != static_cast<size_t>(tensor.numel()) * DTypeSize(tensor.dtype)) {
    Fail(path, "tensor byte size does not match shape " + ShapeString(tensor.shape) + " " + tensor.dtype);
  }
  const char order = (code == "u1" || code == "i1" || code == "b1") ? '|' : '<';
  std::string shape = "(";
  for (size_t i = 0; i < tensor.shape.size(); ++i) shape += std::to_string(tensor.shape[i]) + ", ";
  if (tensor.shape.size() > 1) shape.resize(shape.size() - 2);  // "(a, b)"; a 1-tuple keeps "(a,"
  else if (tensor.shape.size() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header =
      std::string("{'descr': '") + order + code + "', 'fortran_order': False, 'shape': " + shape + ", }";

  // Pad with spaces so the data starts 64-byte aligned; the header ends with '\n'.
  const bool v1 = (10 + header.size() + 1 + 63) / 64 * 64 - 10 <= 65535;  // else the length needs u32 (v2)
  const size_t prefix = v1 ? 10 : 12;
  const size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';

  std::string out = "\x93NUMPY";
  out += static_cast<char>(v1 ? 1 : 2);
  out += '\0';
  const uint32_t len = static_cast<uint32_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (!v1) {
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 24) & 0xff);
  }
  out += header;

  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) Fail(path, std::string("cannot write: ") + std::strerror(errno));
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.write(reinterpret_cast<const char*>(tensor.bytes.data()), static_cast<std::streamsize>(tensor.bytes.size()));
  f.close();
  if (!f) Fail(path, std::string("write failed: ") + std::strerror(errno));
}

}  // namespace tvm_ncnn
