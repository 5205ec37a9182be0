// deploy_app's JSON, by hand: strings and numbers for its few flat fields (main.cc, detections.cc).
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace deploy_app {

inline std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// NaN and infinities are not JSON numbers: null.
inline std::string JsonNumber(double x, const char* fmt = "%.6g") {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, x);
  return buf;
}

}  // namespace deploy_app
