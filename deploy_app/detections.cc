// deploy_app's printing of detections (Detect's results), as text and as JSON.
#include "detections.h"

#include <cmath>
#include <cstdio>

namespace deploy_app {
namespace {

std::string Number(double x, const char* fmt) {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, x);
  return buf;
}

std::string Quoted(const std::string& s) {
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

}  // namespace

std::string DetectionsJson(const std::vector<tvm_ncnn::Detection>& found, const std::string& task) {
  std::string j = "[";
  for (size_t i = 0; i < found.size(); ++i) {
    const tvm_ncnn::Detection& d = found[i];
    j += std::string(i ? ", " : "") + "{\"class\": " + std::to_string(d.class_id) + ", \"label\": " +
         Quoted(d.label) + ", \"score\": " + Number(d.score, "%.6g") + ", \"box\": [" + Number(d.x1, "%.2f") + ", " +
         Number(d.y1, "%.2f") + ", " + Number(d.x2, "%.2f") + ", " + Number(d.y2, "%.2f") + "]";
    if (task == "pose") {
      j += ", \"keypoints\": [";
      for (size_t k = 0; k < d.keypoints.size(); ++k) {
        const tvm_ncnn::Keypoint& p = d.keypoints[k];
        j += std::string(k ? ", " : "") + "[" + Number(p.x, "%.2f") + ", " + Number(p.y, "%.2f") + ", " +
             Number(p.visibility, "%.4f") + "]";
      }
      j += "]";
    }
    if (task == "segment") j += ", \"mask_area\": " + std::to_string(d.mask.area);
    j += "}";
  }
  return j + "]";
}

std::string DetectionsText(const std::vector<tvm_ncnn::Detection>& found, const std::string& task) {
  std::string out;
  for (size_t i = 0; i < found.size(); ++i) {
    const tvm_ncnn::Detection& d = found[i];
    const std::string name = d.label.empty() ? "class " + std::to_string(d.class_id) : d.label;
    char line[512];
    std::snprintf(line, sizeof(line), "  %2zu. %-14s %.3f  box %.1f,%.1f - %.1f,%.1f", i + 1, name.c_str(),
                  d.score, d.x1, d.y1, d.x2, d.y2);
    out += line;
    if (task == "segment") out += "  (mask " + std::to_string(d.mask.area) + " px)";
    if (task == "pose") {
      int visible = 0;
      for (const tvm_ncnn::Keypoint& k : d.keypoints) visible += k.visibility >= 0.5f;
      out += "  (" + std::to_string(visible) + "/" + std::to_string(d.keypoints.size()) + " keypoints visible)";
    }
    out += "\n";
  }
  return out;
}

}  // namespace deploy_app
