// LoadImage: preprocessing of generated BMPs (RGB/BGR order, mean/std, grayscale and 32-bit images),
// and one clear error for every bad file. Images are written here; nothing is downloaded.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "check.h"

// A 16x8 JPEG of one color (200, 100, 50), baseline, 4:4:4, quality 100: made once with
// PIL.Image.new("RGB", (16, 8), (200, 100, 50)).save(f, "JPEG", quality=100, subsampling=0, optimize=True).
static const std::string kSolidJpeg(
    "\xff\xd8\xff\xe0\x00\x10\x4a\x46\x49\x46\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00\x43"
    "\x00\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\xff\xdb\x00\x43\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\xff\xc0\x00\x11\x08\x00\x08\x00\x10\x03"
    "\x01\x11\x00\x02\x11\x01\x03\x11\x01\xff\xc4\x00\x15\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x06\xff\xc4\x00\x14\x10\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\xff\xc4\x00\x15\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x09\xff\xc4\x00\x14\x11\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00\x9f\x4a\xf5\xb0\x01\xff\xd9",
    288);

static uint32_t Crc32(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char ch : s) {
    c ^= ch;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

static std::string BE32(uint32_t v) {
  return std::string{char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

static std::string PngChunk(const std::string& type, const std::string& data) {
  return BE32(static_cast<uint32_t>(data.size())) + type + data + BE32(Crc32(type + data));
}

// A PNG of one color, deflate "stored" blocks (no compression). channels: 1 gray, 3 RGB, 4 RGBA.
static std::string SolidPng(int w, int h, int channels, const uint8_t px[4]) {
  std::string raw;
  for (int y = 0; y < h; ++y) {
    raw += '\0';  // filter: none
    for (int x = 0; x < w; ++x) raw.append(reinterpret_cast<const char*>(px), channels);
  }
  std::string z = "\x78\x01";
  for (size_t at = 0; at < raw.size() || at == 0; at += 65535) {
    const size_t n = std::min<size_t>(65535, raw.size() - at);
    z += static_cast<char>(at + n >= raw.size() ? 1 : 0);  // BFINAL, BTYPE=00
    z += LE(static_cast<uint32_t>(n), 2) + LE(static_cast<uint32_t>(~n & 0xffff), 2) + raw.substr(at, n);
  }
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  z += BE32((b << 16) | a);
  const char color_type = channels == 1 ? 0 : channels == 3 ? 2 : 6;
  const std::string ihdr = BE32(w) + BE32(h) + std::string{8, color_type, 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n", 8) + PngChunk("IHDR", ihdr) + PngChunk("IDAT", z) + PngChunk("IEND", "");
}

static tvm_ncnn::ModelInfo ImageModel(int h, int w, const std::string& color) {
  tvm_ncnn::ModelInfo info;
  info.inputs.push_back({"input", {1, 3, h, w}, "float32"});
  info.preprocess.mean = {10.f, 20.f, 30.f};
  info.preprocess.std = {2.f, 4.f, 5.f};
  info.preprocess.color = color;
  return info;
}

// Every pixel of channel c must equal want[c].
static bool AllEqual(const tvm_ncnn::Tensor& t, int h, int w, const float want[3], float tol = 1e-3f) {
  if (t.shape != std::vector<int64_t>{1, 3, h, w} || t.dtype != "float32") return false;
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < h * w; ++i) {
      float v = t.f32()[c * h * w + i];
      if (std::fabs(v - want[c]) > tol) {
        std::fprintf(stderr, "channel %d pixel %d: %f, want %f\n", c, i, v, want[c]);
        return false;
      }
    }
  }
  return true;
}

static std::string PngHeader(uint32_t w, uint32_t h) {
  auto be = [](uint32_t v) {
    return std::string{char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
  };
  return std::string("\x89PNG\r\n\x1a\n", 8) + be(13) + "IHDR" + be(w) + be(h) +
         std::string("\x08\x02\x00\x00\x00", 5) + "CRC!";
}

int main() {
  const std::string dir = TempDir();
  using tvm_ncnn::LoadImage;

  // 24-bit color: (pixel - mean) / std per channel, channels in the model's order.
  WriteFile(dir + "/solid.bmp", SolidBmp(5, 4, 24, 200, 100, 50));
  const float rgb[3] = {(200 - 10) / 2.f, (100 - 20) / 4.f, (50 - 30) / 5.f};
  const float bgr[3] = {(50 - 30) / 5.f, (100 - 20) / 4.f, (200 - 10) / 2.f};  // mean/std stay R,G,B
  CHECK(AllEqual(LoadImage(dir + "/solid.bmp", ImageModel(3, 2, "RGB")), 3, 2, rgb));
  CHECK(AllEqual(LoadImage(dir + "/solid.bmp", ImageModel(3, 2, "BGR")), 3, 2, bgr));
  CHECK(AllEqual(LoadImage(dir + "/solid.bmp", ImageModel(8, 7, "RGB")), 8, 7, rgb));  // upscale

  // Grayscale and 32-bit images become 3 channels.
  WriteFile(dir + "/gray.bmp", SolidBmp(3, 3, 8, 120, 120, 120));
  const float gray[3] = {(120 - 10) / 2.f, (120 - 20) / 4.f, (120 - 30) / 5.f};
  CHECK(AllEqual(LoadImage(dir + "/gray.bmp", ImageModel(2, 2, "RGB")), 2, 2, gray));
  WriteFile(dir + "/rgba.bmp", SolidBmp(4, 4, 32, 200, 100, 50));
  CHECK(AllEqual(LoadImage(dir + "/rgba.bmp", ImageModel(2, 2, "RGB")), 2, 2, rgb));

  // JPEG (a lossy decoder may be off by one level: 1/std), and what a cut-off download looks like.
  WriteFile(dir + "/solid.jpg", kSolidJpeg);
  CHECK(AllEqual(LoadImage(dir + "/solid.jpg", ImageModel(4, 4, "RGB")), 4, 4, rgb, 0.51f));
  WriteFile(dir + "/trailing.jpg", kSolidJpeg + "some bytes after the end-of-image marker");
  CHECK(AllEqual(LoadImage(dir + "/trailing.jpg", ImageModel(4, 4, "RGB")), 4, 4, rgb, 0.51f));
  for (size_t keep : {kSolidJpeg.size() - 2, kSolidJpeg.size() - 40, size_t{200}, size_t{30}}) {
    WriteFile(dir + "/cut.jpg", kSolidJpeg.substr(0, keep));
    CHECK_ERROR(LoadImage(dir + "/cut.jpg", ImageModel(4, 4, "RGB")), "cut.jpg", "JPEG");
  }

  // PNG: gray, RGB and RGBA all become 3 channels.
  const uint8_t color[4] = {200, 100, 50, 255}, gray_px[4] = {120, 0, 0, 0};
  WriteFile(dir + "/rgb.png", SolidPng(6, 5, 3, color));
  CHECK(AllEqual(LoadImage(dir + "/rgb.png", ImageModel(3, 2, "RGB")), 3, 2, rgb));
  CHECK(AllEqual(LoadImage(dir + "/rgb.png", ImageModel(3, 2, "BGR")), 3, 2, bgr));
  WriteFile(dir + "/rgba.png", SolidPng(6, 5, 4, color));
  CHECK(AllEqual(LoadImage(dir + "/rgba.png", ImageModel(3, 2, "RGB")), 3, 2, rgb));
  WriteFile(dir + "/gray.png", SolidPng(6, 5, 1, gray_px));
  CHECK(AllEqual(LoadImage(dir + "/gray.png", ImageModel(3, 2, "RGB")), 3, 2, gray));
  const std::string png = SolidPng(6, 5, 3, color);
  for (size_t keep : {png.size() - 12, png.size() / 2, size_t{40}}) {
    WriteFile(dir + "/cut.png", png.substr(0, keep));
    CHECK_ERROR(LoadImage(dir + "/cut.png", ImageModel(3, 2, "RGB")), "cut.png", "PNG");
  }
  const std::string bmp = SolidBmp(5, 4, 24, 200, 100, 50);
  WriteFile(dir + "/cut.bmp", bmp.substr(0, bmp.size() - 10));
  CHECK_ERROR(LoadImage(dir + "/cut.bmp", ImageModel(3, 2, "RGB")), "cut.bmp", "truncated BMP");

  // Errors name the file and the problem.
  const tvm_ncnn::ModelInfo model = ImageModel(2, 2, "RGB");
  CHECK_ERROR(LoadImage(dir + "/missing.jpg", model), "missing.jpg", "no such file");
  mkdir((dir + "/adir.png").c_str(), 0755);
  CHECK_ERROR(LoadImage(dir + "/adir.png", model), "adir.png", "directory");
  WriteFile(dir + "/text.jpg", "this is not a picture\n");
  CHECK_ERROR(LoadImage(dir + "/text.jpg", model), "text.jpg", "not a JPEG, PNG or BMP");
  WriteFile(dir + "/empty.png", "");
  CHECK_ERROR(LoadImage(dir + "/empty.png", model), "empty.png", "not a JPEG, PNG or BMP");
  WriteFile(dir + "/bad_header.jpg", std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00", 11));
  CHECK_ERROR(LoadImage(dir + "/bad_header.jpg", model), "bad_header.jpg", "corrupt JPEG");
  // A JPEG whose frame header is fine (16x16) but whose data is missing.
  WriteFile(dir + "/no_data.jpg",
            std::string("\xFF\xD8\xFF\xC0\x00\x11\x08\x00\x10\x00\x10\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01", 21));
  CHECK_ERROR(LoadImage(dir + "/no_data.jpg", model), "no_data.jpg", "truncated JPEG");
  WriteFile(dir + "/garbage.png", PngHeader(16, 16) + std::string(64, 'x'));
  CHECK_ERROR(LoadImage(dir + "/garbage.png", model), "garbage.png", "cannot decode");
  WriteFile(dir + "/huge.png", PngHeader(20000, 20000));
  CHECK_ERROR(LoadImage(dir + "/huge.png", model), "huge.png", "20000x20000", "100 megapixel");
  std::string huge_bmp = SolidBmp(1, 1, 24, 0, 0, 0);
  huge_bmp.replace(18, 8, LE(30000, 4) + LE(static_cast<uint32_t>(-30000), 4));  // top-down, 30000x30000
  WriteFile(dir + "/huge.bmp", huge_bmp);
  CHECK_ERROR(LoadImage(dir + "/huge.bmp", model), "huge.bmp", "30000x30000", "100 megapixel");
  std::string zero_bmp = SolidBmp(1, 1, 24, 0, 0, 0);
  zero_bmp.replace(18, 4, LE(0, 4));
  WriteFile(dir + "/zero.bmp", zero_bmp);
  CHECK_ERROR(LoadImage(dir + "/zero.bmp", model), "zero.bmp", "empty");

  // A model whose input is not an image.
  tvm_ncnn::ModelInfo vec;
  vec.inputs.push_back({"features", {1, 10}, "float32"});
  CHECK_ERROR(LoadImage(dir + "/solid.bmp", vec), "solid.bmp", "features", "[1,10]");
  tvm_ncnn::ModelInfo none;
  CHECK_ERROR(LoadImage(dir + "/solid.bmp", none), "solid.bmp", "no inputs");
  tvm_ncnn::ModelInfo bad_std = ImageModel(2, 2, "RGB");
  bad_std.preprocess.std = {1.f, 0.f, 1.f};
  CHECK_ERROR(LoadImage(dir + "/solid.bmp", bad_std), "solid.bmp", "std");

  return Finish("test_image");
}
