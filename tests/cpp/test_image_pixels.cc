// PreprocessImage (pixels in memory) and the resize modes: a decoded file and the same pixels in memory give the
// same tensor bit for bit, in every pixel format and at any stride; crop and letterbox land where torchvision's
// Resize+CenterCrop and ultralytics' LetterBox put the image (tests/python/test_images.py compares the pixels
// with those libraries). Images are generated here.
#include <cstring>
#include <vector>

#include "check.h"

using tvm_ncnn::ImageTransform;
using tvm_ncnn::PixelFormat;
using tvm_ncnn::Pixels;
using tvm_ncnn::PreprocessImage;
using tvm_ncnn::Tensor;

// A w x h RGB image with texture in every channel (no two neighbours alike), packed.
static std::vector<uint8_t> Pattern(int w, int h) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 7 + y * 3);
      p[1] = static_cast<uint8_t>((x * x + y * 11) ^ 0x5a);
      p[2] = static_cast<uint8_t>(255 - x * 2 - y * 5);
    }
  }
  return px;
}

// A 24-bit bottom-up BMP of packed RGB pixels (lossless: stb decodes exactly these bytes).
static std::string Bmp(const std::vector<uint8_t>& rgb, int w, int h) {
  const int row = (w * 3 + 3) / 4 * 4;
  std::string s = "BM" + LE(54 + row * h, 4) + LE(0, 4) + LE(54, 4);
  s += LE(40, 4) + LE(w, 4) + LE(h, 4) + LE(1, 2) + LE(24, 2) + LE(0, 4) + LE(row * h, 4) + LE(2835, 4) +
       LE(2835, 4) + LE(0, 4) + LE(0, 4);
  for (int y = h - 1; y >= 0; --y) {
    std::string line;
    for (int x = 0; x < w; ++x) {
      const uint8_t* p = &rgb[(static_cast<size_t>(y) * w + x) * 3];
      line += std::string{char(p[2]), char(p[1]), char(p[0])};
    }
    line.resize(row, '\0');
    s += line;
  }
  return s;
}

// The same pixels in another format, with `pad` spare bytes at the end of each row.
static std::vector<uint8_t> Convert(const std::vector<uint8_t>& rgb, int w, int h, PixelFormat f, int pad) {
  const int ch = f == PixelFormat::kGray ? 1 : (f == PixelFormat::kRGBA || f == PixelFormat::kBGRA) ? 4 : 3;
  const bool swap = f == PixelFormat::kBGR || f == PixelFormat::kBGRA;
  std::vector<uint8_t> out(static_cast<size_t>(w * ch + pad) * h, 0xEE);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const uint8_t* s = &rgb[(static_cast<size_t>(y) * w + x) * 3];
      uint8_t* o = &out[static_cast<size_t>(y) * (w * ch + pad) + x * ch];
      if (ch == 1) {
        o[0] = s[0];
        continue;
      }
      o[0] = s[swap ? 2 : 0];
      o[1] = s[1];
      o[2] = s[swap ? 0 : 2];
      if (ch == 4) o[3] = static_cast<uint8_t>(x);  // alpha is ignored, whatever it holds
    }
  }
  return out;
}

static tvm_ncnn::ModelInfo Model(int h, int w, const std::string& color, const std::string& resize) {
  tvm_ncnn::ModelInfo info;
  info.inputs.push_back({"input", {1, 3, h, w}, "float32"});
  info.preprocess.mean = {10.f, 20.f, 30.f};
  info.preprocess.std = {2.f, 4.f, 5.f};
  info.preprocess.color = color;
  info.preprocess.resize = resize;
  return info;
}

static bool Same(const Tensor& a, const Tensor& b) {
  return a.shape == b.shape && a.dtype == b.dtype && a.bytes == b.bytes;  // bit for bit
}

static bool Near(double a, double b) { return a > b - 1e-9 && a < b + 1e-9; }

int main() {
  const std::string dir = TempDir();
  const int w = 61, h = 37;  // odd sizes: a crop and a letterbox split the margin unevenly
  const std::vector<uint8_t> rgb = Pattern(w, h);
  WriteFile(dir + "/pattern.bmp", Bmp(rgb, w, h));

  for (const char* resize : {"stretch", "crop", "letterbox"}) {
    for (const char* color : {"RGB", "BGR"}) {
      for (const auto& size : {std::pair<int, int>{24, 24}, {20, 32}, {37, 61}, {80, 50}}) {
        const tvm_ncnn::ModelInfo info = Model(size.first, size.second, color, resize);
        ImageTransform from_file, from_pixels;
        const Tensor want = tvm_ncnn::LoadImage(dir + "/pattern.bmp", info, &from_file);
        Pixels p{rgb.data(), w, h, PixelFormat::kRGB, 0};
        CHECK(Same(PreprocessImage(p, info, &from_pixels), want));
        CHECK(from_pixels.offset_x == from_file.offset_x && from_pixels.scale_y == from_file.scale_y);
        for (PixelFormat f : {PixelFormat::kRGB, PixelFormat::kBGR, PixelFormat::kRGBA, PixelFormat::kBGRA}) {
          for (int pad : {0, 13}) {  // packed, and rows with spare bytes (a frame's stride)
            const std::vector<uint8_t> buf = Convert(rgb, w, h, f, pad);
            const int ch = (f == PixelFormat::kRGBA || f == PixelFormat::kBGRA) ? 4 : 3;
            Pixels q{buf.data(), w, h, f, static_cast<size_t>(w * ch + pad)};
            if (!Same(PreprocessImage(q, info), want)) {
              std::fprintf(stderr, "%s %s %dx%d format %d pad %d differs\n", resize, color, size.first, size.second,
                           static_cast<int>(f), pad);
              CHECK(false);
            }
          }
        }
      }
    }
  }

  // Gray: one byte per pixel, the same as an RGB image with three equal channels.
  {
    std::vector<uint8_t> gray_rgb = rgb;
    for (size_t i = 0; i < gray_rgb.size(); i += 3) gray_rgb[i + 1] = gray_rgb[i + 2] = gray_rgb[i];
    const std::vector<uint8_t> gray = Convert(gray_rgb, w, h, PixelFormat::kGray, 5);
    const tvm_ncnn::ModelInfo info = Model(24, 24, "RGB", "crop");
    CHECK(Same(PreprocessImage({gray.data(), w, h, PixelFormat::kGray, static_cast<size_t>(w + 5)}, info),
               PreprocessImage({gray_rgb.data(), w, h, PixelFormat::kRGB, 0}, info)));
  }

  // Where the image lands. 300x200 into 224x224, crop_pct 0.875: shorter side 256 (floor(224 / 0.875)), so
  // 384x256, cut at (80, 16) -- torchvision Resize(256) + CenterCrop(224).
  ImageTransform t = tvm_ncnn::PlaceImage(300, 200, Model(224, 224, "RGB", "crop"));
  CHECK(t.resized_width == 384 && t.resized_height == 256 && t.offset_x == -80 && t.offset_y == -16);
  CHECK(Near(t.scale_x, 384 / 300.0) && Near(t.scale_y, 256 / 200.0));
  CHECK(Near(t.ToImageX(0), 80 / 1.28) && Near(t.ToImageY(224), 240 / 1.28));
  // crop_pct 0.8 in a double: floor(224 / 0.8) is 280, as Python computes it (a float would give 279).
  tvm_ncnn::ModelInfo crop80 = Model(224, 224, "RGB", "crop");
  crop80.preprocess.crop_pct = 0.8;
  t = tvm_ncnn::PlaceImage(500, 500, crop80);
  CHECK(t.resized_width == 280 && t.resized_height == 280 && t.offset_x == -28);
  // An odd margin: torchvision rounds (rw - W) / 2 half to even: 61 wide into 24 at 0.875 (27 short side).
  t = tvm_ncnn::PlaceImage(61, 37, Model(24, 24, "RGB", "crop"));
  CHECK(t.resized_height == 27 && t.resized_width == 27 * 61 / 37 && t.offset_y == -2);  // round(1.5) = 2
  // Letterbox 300x200 into 224x224: scale 224/300, 224x149 (round(149.33)), 37 rows above, 38 below.
  t = tvm_ncnn::PlaceImage(300, 200, Model(224, 224, "RGB", "letterbox"));
  CHECK(t.resized_width == 224 && t.resized_height == 149 && t.offset_x == 0 && t.offset_y == 37);
  CHECK(Near(t.ToImageY(37 + 149), 200) && Near(t.ToImageX(224), 300));
  t = tvm_ncnn::PlaceImage(640, 480, Model(640, 640, "RGB", "letterbox"));
  CHECK(t.resized_width == 640 && t.resized_height == 480 && t.offset_y == 80 && t.scale_x == 1);
  t = tvm_ncnn::PlaceImage(300, 200, Model(224, 224, "RGB", "stretch"));
  CHECK(t.resized_width == 224 && t.offset_x == 0 && Near(t.scale_y, 224 / 200.0));

  // Letterbox borders hold `pad` (114 by default), normalized like any pixel.
  {
    tvm_ncnn::ModelInfo info = Model(16, 16, "RGB", "letterbox");
    info.preprocess.pad = 50;
    const Tensor x = PreprocessImage({rgb.data(), w, h, PixelFormat::kRGB, 0}, info, &t);
    CHECK(t.offset_y > 0);
    CHECK(x.f32()[0] == (50 - 10) / 2.f && x.f32()[256] == (50 - 20) / 4.f && x.f32()[512 + 255] == (50 - 30) / 5.f);
  }

  // A 1-pixel-wide or -high image (ncnn's bilinear resize cannot take one) resizes to its own color.
  for (const auto& size : {std::pair<int, int>{1, 9}, {9, 1}, {1, 1}}) {
    const std::vector<uint8_t> solid(static_cast<size_t>(size.first) * size.second * 3, 90);
    for (const char* resize : {"stretch", "crop", "letterbox"}) {
      const Tensor x = PreprocessImage({solid.data(), size.first, size.second, PixelFormat::kBGR, 0},
                                       Model(6, 6, "RGB", resize), &t);
      const int centre = static_cast<int>(t.offset_y + t.resized_height / 2) * 6 +
                         static_cast<int>(t.offset_x + t.resized_width / 2);
      CHECK(x.f32()[centre] == (90 - 10) / 2.f);
    }
  }

  // Refused with one line each.
  const tvm_ncnn::ModelInfo model = Model(8, 8, "RGB", "stretch");
  CHECK_ERROR(PreprocessImage({nullptr, 4, 4, PixelFormat::kRGB, 0}, model), "pixels", "null");
  CHECK_ERROR(PreprocessImage({rgb.data(), 0, 4, PixelFormat::kRGB, 0}, model), "pixels", "0x4", "empty");
  CHECK_ERROR(PreprocessImage({rgb.data(), 10, 2, PixelFormat::kRGBA, 30}, model), "stride 30", "10 x 4");
  CHECK_ERROR(PreprocessImage({rgb.data(), 20000, 20000, PixelFormat::kRGB, 0}, model), "100 megapixel");
  tvm_ncnn::ModelInfo bad = Model(8, 8, "RGB", "squash");
  CHECK_ERROR(PreprocessImage({rgb.data(), 4, 4, PixelFormat::kRGB, 0}, bad), "resize 'squash'", "letterbox");
  bad = Model(8, 8, "RGB", "crop");
  bad.preprocess.crop_pct = 1.5;
  CHECK_ERROR(tvm_ncnn::PlaceImage(4, 4, bad), "crop_pct", "0.01..1");
  bad = Model(8, 8, "RGB", "letterbox");
  bad.preprocess.pad = 300;
  CHECK_ERROR(tvm_ncnn::LoadImage(dir + "/pattern.bmp", bad), "pattern.bmp", "pad 300");
  bad = Model(224, 224, "RGB", "crop");
  bad.preprocess.crop_pct = 0.01;
  CHECK_ERROR(tvm_ncnn::PlaceImage(1000, 1000, bad), "22400x22400", "100 megapixel");
  return Finish("test_image_pixels");
}
