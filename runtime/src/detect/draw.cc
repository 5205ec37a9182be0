// DrawDetections: what the model found, drawn onto pixels in memory (an Image, e.g. a camera frame DecodeImage or
// the app made) or onto a photo written as JPEG or PNG by ncnn's simpleocv (its stb_image_write, already part of
// the ncnn this runtime links) and ncnn's font: no OpenCV needed.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <cstdio>
#include <string>

#include "mat_pixel_drawing_font.h"  // ncnn: mono_font_data
#include "simpleocv.h"                // ncnn: imread, imwrite (stb)
#include "tvm_ncnn/detect.h"

namespace tvm_ncnn {
namespace {

// A few well-separated colours (B, G, R), one per class in turn.
const unsigned char kPalette[][3] = {{56, 56, 255}, {151, 157, 255}, {31, 112, 255}, {29, 178, 255},
                                     {49, 210, 207}, {10, 249, 72},  {23, 204, 146}, {134, 219, 61},
                                     {211, 188, 0},  {209, 148, 0},  {255, 115, 0},  {255, 56, 132},
                                     {133, 0, 82},   {255, 56, 203}, {200, 149, 255}, {199, 55, 255}};

const unsigned char* ColorOf(int cls) {
  const int n = sizeof(kPalette) / sizeof(kPalette[0]);
  return kPalette[((cls % n) + n) % n];
}

std::string LowerExtension(const std::string& path) {
  const size_t dot = path.find_last_of('.'), slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// Half-transparent mask: each pixel of the object moves halfway to the class colour.
void TintMask(cv::Mat& img, const Mask& m, const unsigned char* bgr) {
  for (int row = 0; row < m.height; ++row) {
    const int y = m.y + row;
    if (y < 0 || y >= img.rows) continue;
    for (int col = 0; col < m.width; ++col) {
      const int x = m.x + col;
      if (x < 0 || x >= img.cols || !m.pixels[static_cast<size_t>(row) * m.width + col]) continue;
      unsigned char* px = img.data + (static_cast<size_t>(y) * img.cols + x) * 3;
      for (int c = 0; c < 3; ++c) px[c] = static_cast<unsigned char>((px[c] + bgr[c]) / 2);
    }
  }
}

// ncnn builds without NCNN_PIXEL_DRAWING (the runtime needs none of it), so the few shapes drawn here are done
// by hand on the B,G,R bytes: filled rectangles, hollow ones as four filled strips, filled discs, and text.
void Fill(cv::Mat& img, int x0, int y0, int x1, int y1, const unsigned char* bgr, int alpha = 255) {
  x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, img.cols), y1 = std::min(y1, img.rows);
  for (int y = y0; y < y1; ++y) {
    unsigned char* px = img.data + (static_cast<size_t>(y) * img.cols + x0) * 3;
    for (int x = x0; x < x1; ++x, px += 3) {
      for (int c = 0; c < 3; ++c) px[c] = static_cast<unsigned char>((px[c] * (255 - alpha) + bgr[c] * alpha) / 255);
    }
  }
}

void Box(cv::Mat& img, int x0, int y0, int x1, int y1, int t, const unsigned char* bgr) {
  Fill(img, x0, y0, x1 + 1, y0 + t, bgr);
  Fill(img, x0, y1 + 1 - t, x1 + 1, y1 + 1, bgr);
  Fill(img, x0, y0, x0 + t, y1 + 1, bgr);
  Fill(img, x1 + 1 - t, y0, x1 + 1, y1 + 1, bgr);
}

// An oriented box's outline: its four sides, each stamped with t x t squares along the line (no OpenCV line).
void RotatedOutline(cv::Mat& img, const std::vector<float>& r, int t, const unsigned char* bgr) {
  const float c = std::cos(r[4]), s = std::sin(r[4]), hw = r[2] / 2, hh = r[3] / 2;
  float px[4], py[4];
  const float sx[4] = {-1, 1, 1, -1}, sy[4] = {-1, -1, 1, 1};
  for (int k = 0; k < 4; ++k) {
    px[k] = r[0] + sx[k] * hw * c - sy[k] * hh * s;
    py[k] = r[1] + sx[k] * hw * s + sy[k] * hh * c;
  }
  for (int k = 0; k < 4; ++k) {
    const float x0 = px[k], y0 = py[k], x1 = px[(k + 1) % 4], y1 = py[(k + 1) % 4];
    const int steps = std::max(1, static_cast<int>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))));
    if (steps > 100000) continue;  // a degenerate box far outside the image
    for (int i = 0; i <= steps; ++i) {
      const int x = static_cast<int>(x0 + (x1 - x0) * i / steps) - t / 2;
      const int y = static_cast<int>(y0 + (y1 - y0) * i / steps) - t / 2;
      Fill(img, x, y, x + t, y + t, bgr);
    }
  }
}

void Disc(cv::Mat& img, int cx, int cy, int r, const unsigned char* bgr) {
  for (int dy = -r; dy <= r; ++dy) {
    for (int dx = -r; dx <= r; ++dx) {
      if (dx * dx + dy * dy <= r * r) Fill(img, cx + dx, cy + dy, cx + dx + 1, cy + dy + 1, bgr);
    }
  }
}

// Text in ncnn's monospace font (mat_pixel_drawing_font.h, part of the ncnn sources this runtime builds):
// glyphs '!'..'~', 20 x 40 pixels at 4 bits (two a byte, the even column in the low nibble), drawn scaled to
// `size` x 2 `size` by nearest neighbour, blended by the glyph's coverage.
const int kGlyphW = 20, kGlyphH = 40;
int TextWidth(const std::string& text, int size) { return static_cast<int>(text.size()) * size; }

void Text(cv::Mat& img, const std::string& text, int x, int y, int size, const unsigned char* bgr) {
  for (char ch : text) {
    if (ch > ' ' && ch <= '~') {
      const unsigned char* glyph = mono_font_data[ch - '!'];
      for (int gy = 0; gy < 2 * size; ++gy) {
        const int sy = gy * kGlyphH / (2 * size);
        for (int gx = 0; gx < size; ++gx) {
          const int sx = gx * kGlyphW / size;
          const unsigned char b = glyph[sy * (kGlyphW / 2) + sx / 2];
          const int a = (sx % 2 == 0 ? b & 0x0f : b >> 4) * 17;
          if (a) Fill(img, x + gx, y + gy, x + gx + 1, y + gy + 1, bgr, a);
        }
      }
    }
    x += size;
  }
}

// Draws onto 3-channel pixels whose order is B,G,R, or R,G,B when `rgb` (the palette is swapped to match).
void Draw(cv::Mat& img, const std::vector<Detection>& detections, bool rgb) {
  auto color_of = [rgb](int cls, unsigned char* out) {
    const unsigned char* bgr = ColorOf(cls);
    for (int c = 0; c < 3; ++c) out[c] = rgb ? bgr[2 - c] : bgr[c];
  };
  const int thick = std::max(1, std::min(img.cols, img.rows) / 300);
  const int font = std::max(8, std::min(img.cols, img.rows) / 60);  // glyph width; height is twice that
  unsigned char color[3];
  for (const Detection& d : detections) {  // masks first, so that boxes and text stay on top
    color_of(d.class_id, color);
    if (!d.mask.pixels.empty()) TintMask(img, d.mask, color);
  }
  const unsigned char white[3] = {255, 255, 255};
  for (const Detection& d : detections) {
    color_of(d.class_id, color);
    if (d.rbox.size() == 5) {
      RotatedOutline(img, d.rbox, thick, color);
    } else {
      Box(img, static_cast<int>(d.x1), static_cast<int>(d.y1), static_cast<int>(d.x2), static_cast<int>(d.y2), thick,
          color);
    }
    for (const Keypoint& k : d.keypoints) {
      if (k.visibility < 0.5f) continue;  // ultralytics draws the keypoints its model thinks visible
      Disc(img, static_cast<int>(k.x), static_cast<int>(k.y), thick + 2, color);
    }
    char text[160];
    std::snprintf(text, sizeof(text), "%s %.2f",
                  d.label.empty() ? std::to_string(d.class_id).c_str() : d.label.c_str(), d.score);
    const int tw = TextWidth(text, font), th = 2 * font;
    const int x = std::clamp(static_cast<int>(d.x1), 0, std::max(0, img.cols - tw));
    int y = static_cast<int>(d.y1) - th;
    if (y < 0) y = static_cast<int>(d.y1);  // no room above the box: inside it
    y = std::clamp(y, 0, std::max(0, img.rows - th));
    Fill(img, x, y, x + tw, y + th, color);
    Text(img, text, x, y, font, white);
  }
}

void CheckOutPath(const std::string& out_path) {
  const std::string ext = LowerExtension(out_path);
  if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") {
    throw Error("draw: '" + out_path + "' must end in .jpg, .jpeg or .png");
  }
}

// A cv::Mat header over the image's own bytes (no copy), after checking they hold what the fields say.
cv::Mat Wrap(const Image& image, const char* what) {
  if (image.format != PixelFormat::kBGR && image.format != PixelFormat::kRGB) {
    throw Error(std::string(what) + ": the image must have 3 channels (kBGR or kRGB pixels)");
  }
  if (image.width < 1 || image.height < 1 ||
      image.bytes.size() != static_cast<size_t>(image.width) * image.height * 3) {
    throw Error(std::string(what) + ": a " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                " image needs " + std::to_string(3ull * std::max(image.width, 0) * std::max(image.height, 0)) +
                " bytes, it holds " + std::to_string(image.bytes.size()));
  }
  return cv::Mat(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.bytes.data()));
}

}  // namespace

void DrawDetections(const std::string& image_path, const std::vector<Detection>& detections,
                    const std::string& out_path) {
  CheckOutPath(out_path);
  struct stat st;
  if (stat(image_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw Error("draw: image '" + image_path + "' is not a readable file");
  }
  cv::Mat img = cv::imread(image_path, cv::IMREAD_COLOR);  // B, G, R
  if (img.empty() || img.c != 3) throw Error("draw: cannot decode image '" + image_path + "'");
  Draw(img, detections, /*rgb=*/false);
  if (!cv::imwrite(out_path, img)) throw Error("draw: cannot write '" + out_path + "'");
}

void DrawDetections(Image* image, const std::vector<Detection>& detections) {
  if (image == nullptr) throw Error("draw: the image is null");
  cv::Mat img = Wrap(*image, "draw");
  Draw(img, detections, image->format == PixelFormat::kRGB);
}

void SaveImage(const Image& image, const std::string& path) {
  CheckOutPath(path);
  cv::Mat img = Wrap(image, "save");
  if (image.format == PixelFormat::kRGB) {  // the writer takes B,G,R
    cv::Mat bgr = img.clone();
    for (size_t i = 0; i < image.bytes.size(); i += 3) std::swap(bgr.data[i], bgr.data[i + 2]);
    img = bgr;
  }
  if (!cv::imwrite(path, img)) throw Error("save: cannot write '" + path + "'");
}

}  // namespace tvm_ncnn
