// Image file or bytes -> pixels (DecodeImage) -> model input (LoadImage): decode with ncnn's simpleocv (stb), then
// PreprocessPixels (image/preprocess.cc), the path every image takes. The pixel count is read from the header
// first, so a huge (or hostile) image is refused before the decoder allocates for it.
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "internal.h"
#include "simpleocv.h"  // ncnn
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

constexpr int64_t kMaxPixels = 100 * 1000 * 1000;

struct ImageHeader {
  const char* format = nullptr;
  int64_t width = -1, height = -1;  // -1: not found in the header
  bool truncated = false;            // the data ends before the image does
};

uint32_t BigEndian(const unsigned char* p, int n) {
  uint32_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

uint32_t LittleEndian(const unsigned char* p, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// True if the bytes from f's position on contain the JPEG end-of-image marker FF D9.
bool ContainsEndOfImage(std::istream& f) {
  std::vector<char> buf(1 << 16);
  char prev = 0;
  for (;;) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const size_t n = static_cast<size_t>(f.gcount());
    if (n == 0) return false;
    if (prev == '\xFF' && buf[0] == '\xD9') return true;
    const char* end = buf.data() + n;
    for (const char* p = buf.data(); (p = static_cast<const char*>(std::memchr(p, 0xFF, end - p))); ++p) {
      if (p + 1 < end && p[1] == '\xD9') return true;
    }
    prev = buf[n - 1];
  }
}

// JPEG: walk the marker segments: the first SOFn holds height and width. Then require a start of scan and,
// after it, an end-of-image marker: stb decodes a cut-off file without complaint (missing data reads as 0),
// and a half-downloaded photo must be an error, not a gray image.
void ReadJpegSize(std::istream& f, ImageHeader* h) {
  f.seekg(2);
  unsigned char b[5];
  int64_t width = -1, height = -1;
  while (f.read(reinterpret_cast<char*>(b), 2)) {
    if (b[0] != 0xFF) return;  // lost sync: corrupt
    unsigned char marker = b[1];
    while (marker == 0xFF) {  // fill bytes
      if (!f.read(reinterpret_cast<char*>(&marker), 1)) return;
    }
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length
    if (marker == 0xD9) return;  // end of image before any scan
    if (!f.read(reinterpret_cast<char*>(b), 2)) return;
    const uint32_t len = BigEndian(b, 2);
    if (len < 2) return;
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof && width < 0) {
      if (len < 7 || !f.read(reinterpret_cast<char*>(b), 5)) return;
      height = BigEndian(b + 1, 2);
      width = BigEndian(b + 3, 2);
      f.seekg(len - 7, std::ios::cur);
      continue;
    }
    if (marker == 0xDA) {  // start of scan: entropy-coded data follows, where 0xFF is always escaped
      if (width < 0) return;
      if (!ContainsEndOfImage(f)) {
        h->truncated = true;
        return;
      }
      h->width = width;
      h->height = height;
      return;
    }
    f.seekg(len - 2, std::ios::cur);
  }
  h->truncated = width >= 0;  // a frame header, then the file ended before the scan
}

ImageHeader ReadHeader(std::istream& f, int64_t file_size) {
  ImageHeader h;
  unsigned char b[34] = {0};
  f.read(reinterpret_cast<char*>(b), sizeof(b));
  const std::streamsize got = f.gcount();
  f.clear();
  if (got >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
    h.format = "JPEG";
    ReadJpegSize(f, &h);
  } else if (got >= 8 && std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) {
    h.format = "PNG";
    if (got >= 24 && std::memcmp(b + 12, "IHDR", 4) == 0) {
      h.width = BigEndian(b + 16, 4);
      h.height = BigEndian(b + 20, 4);
    }
  } else if (got >= 2 && b[0] == 'B' && b[1] == 'M') {
    h.format = "BMP";
    const uint32_t dib = got >= 18 ? LittleEndian(b + 14, 4) : 0;
    int64_t bpp = 0, compression = 0;
    if (dib == 12 && got >= 26) {  // BITMAPCOREHEADER: 16-bit sizes
      h.width = LittleEndian(b + 18, 2);
      h.height = LittleEndian(b + 20, 2);
      bpp = LittleEndian(b + 24, 2);
    } else if (dib >= 40 && got >= 34) {  // BITMAPINFOHEADER and later; height < 0 means top-down
      h.width = static_cast<int32_t>(LittleEndian(b + 18, 4));
      h.height = static_cast<int32_t>(LittleEndian(b + 22, 4));
      if (h.height < 0) h.height = -h.height;
      if (h.width < 0) h.width = -1;
      bpp = LittleEndian(b + 28, 2);
      compression = LittleEndian(b + 30, 4);
    }
    // Uncompressed rows are 4-byte aligned; stb would read missing rows as black.
    const bool uncompressed = compression == 0 || compression == 3 || compression == 6;
    if (uncompressed && bpp > 0 && h.width > 0 && h.height > 0 && h.width * h.height <= kMaxPixels) {
      const int64_t need = LittleEndian(b + 10, 4) + (h.width * bpp + 31) / 32 * 4 * h.height;
      h.truncated = file_size < need;
    }
  }
  return h;
}

// The header checks every image gets before it is decoded (README "Errors and limits").
// Returns the format's name.
const char* CheckHeader(std::istream& f, int64_t size, const std::string& name) {
  if (size == 0) throw Error(name + "empty file (0 bytes): not a JPEG, PNG or BMP image");
  const ImageHeader h = ReadHeader(f, size);
  if (!h.format) throw Error(name + "not a JPEG, PNG or BMP image");
  if (h.truncated) throw Error(name + "truncated " + h.format + " (the file ends before the image data does)");
  if (h.width < 0 || h.height < 0) throw Error(name + "corrupt " + h.format + " header (no image size)");
  if (h.width == 0 || h.height == 0) throw Error(name + "empty " + h.format + " image (0 pixels)");
  if (h.width * h.height > kMaxPixels) {
    throw Error(name + std::to_string(h.width) + "x" + std::to_string(h.height) +
                " pixels is over the 100 megapixel limit");
  }
  return h.format;
}

// IMREAD_COLOR makes stb convert grayscale/RGBA to 3 channels; simpleocv returns them in BGR order.
cv::Mat CheckDecoded(cv::Mat img, const char* format, const std::string& name) {
  if (img.empty() || img.c != 3) {
    throw Error(name + "cannot decode the " + format + " data (corrupt or unsupported)");
  }
  return img;
}

cv::Mat DecodeFile(const std::string& path, const std::string& name) {
  const int64_t file_size = CheckReadableFile(path, "image");
  std::ifstream f(path, std::ios::binary);
  const char* format = CheckHeader(f, file_size, name);
  return CheckDecoded(cv::imread(path, cv::IMREAD_COLOR), format, name);
}

Pixels PixelsOf(const cv::Mat& img) { return Pixels{img.data, img.cols, img.rows, PixelFormat::kBGR, 0}; }

Image ToImage(const cv::Mat& img) {
  Image out;
  out.width = img.cols;
  out.height = img.rows;
  out.format = PixelFormat::kBGR;
  out.bytes.assign(img.data, img.data + static_cast<size_t>(img.cols) * img.rows * 3);
  return out;
}

}  // namespace

Image DecodeImage(const std::string& path) { return ToImage(DecodeFile(path, "image '" + path + "': ")); }

Image DecodeImage(const uint8_t* data, size_t size, const std::string& what) {
  const std::string name = what + ": ";
  if (data == nullptr && size != 0) throw Error(name + "no data (null pointer)");
  std::vector<unsigned char> bytes(data, data + size);
  std::istringstream f(std::string(bytes.begin(), bytes.end()));
  const char* format = CheckHeader(f, static_cast<int64_t>(size), name);
  return ToImage(CheckDecoded(cv::imdecode(bytes, cv::IMREAD_COLOR), format, name));
}

Tensor LoadImage(const std::string& path, const ModelInfo& info, ImageTransform* transform) {
  const std::string where = "image '" + path + "'";
  CheckReadableFile(path, "image");
  // What the model wants, checked first: no point decoding for a model that cannot take an image.
  CheckImageInput(info, where);
  const cv::Mat img = DecodeFile(path, where + ": ");
  return PreprocessPixels(PixelsOf(img), info, transform, where);
}

}  // namespace tvm_ncnn
