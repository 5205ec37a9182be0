// Minimal self-checking test helpers: each test is a program that exits 0 when every check passed.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include "tvm_ncnn/runtime.h"

static int g_failures = 0;

#define CHECK(cond)                                                                                   \
  do {                                                                                                \
    if (!(cond)) {                                                                                    \
      std::fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);                          \
      ++g_failures;                                                                                   \
    }                                                                                                 \
  } while (0)

// expr must throw tvm_ncnn::Error whose one-line message contains every given substring.
#define CHECK_ERROR(expr, ...)                                                                        \
  do {                                                                                                \
    try {                                                                                             \
      (void)(expr);                                                                                   \
      std::fprintf(stderr, "FAILED %s:%d: %s did not throw\n", __FILE__, __LINE__, #expr);            \
      ++g_failures;                                                                                   \
    } catch (const tvm_ncnn::Error& e) {                                                              \
      const std::string msg = e.what();                                                               \
      for (const std::string& want : std::initializer_list<std::string>{__VA_ARGS__}) {               \
        if (msg.find(want) == std::string::npos) {                                                    \
          std::fprintf(stderr, "FAILED %s:%d: %s: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, \
                       #expr, msg.c_str(), want.c_str());                                             \
          ++g_failures;                                                                               \
        }                                                                                             \
      }                                                                                               \
      if (msg.find('\n') != std::string::npos) {                                                      \
        std::fprintf(stderr, "FAILED %s:%d: message is not one line: %s\n", __FILE__, __LINE__,       \
                     msg.c_str());                                                                    \
        ++g_failures;                                                                                 \
      }                                                                                               \
    }                                                                                                 \
  } while (0)

static std::string g_temp_dir;

// A fresh directory under $TMPDIR (or /tmp) for this test's files; Finish removes it when all checks passed.
inline std::string TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/tvm_ncnn_test_XXXXXX";
  if (!mkdtemp(&tmpl[0])) {
    std::perror("mkdtemp");
    std::exit(2);
  }
  return g_temp_dir = tmpl;
}

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Little-endian integer as bytes.
inline std::string LE(uint32_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// An uncompressed bottom-up BMP of one color. bpp 24 or 32 (pixel r,g,b), or 8 (gray r via a gray palette).
inline std::string SolidBmp(int w, int h, int bpp, uint8_t r, uint8_t g, uint8_t b) {
  const int row = (w * bpp / 8 + 3) / 4 * 4;
  const int palette = bpp == 8 ? 256 * 4 : 0;
  const uint32_t offset = 14 + 40 + palette;
  std::string s = "BM" + LE(offset + row * h, 4) + LE(0, 4) + LE(offset, 4);
  s += LE(40, 4) + LE(w, 4) + LE(h, 4) + LE(1, 2) + LE(bpp, 2) + LE(0, 4) + LE(row * h, 4) + LE(2835, 4) +
       LE(2835, 4) + LE(bpp == 8 ? 256 : 0, 4) + LE(0, 4);
  for (int i = 0; i < palette / 4; ++i) s += std::string{char(i), char(i), char(i), 0};
  for (int y = 0; y < h; ++y) {
    std::string line;
    for (int x = 0; x < w; ++x) {
      if (bpp == 8) line += static_cast<char>(r);
      if (bpp >= 24) line += std::string{char(b), char(g), char(r)};
      if (bpp == 32) line += static_cast<char>(255);
    }
    line.resize(row, '\0');
    s += line;
  }
  return s;
}

inline int Finish(const char* name) {
  if (g_failures) {
    std::fprintf(stderr, "%s: %d check(s) failed (files kept in %s)\n", name, g_failures, g_temp_dir.c_str());
    return 1;
  }
  if (!g_temp_dir.empty()) std::filesystem::remove_all(g_temp_dir);
  std::printf("%s: all checks passed\n", name);
  return 0;
}
