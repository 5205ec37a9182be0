// deploy_app's printing of detections (Detect's results), as text and as JSON.
#include "detections.h"

#include <cstdio>

#include "json.h"

namespace deploy_app {

std::string DetectionsJson(const std::vector<tvm_ncnn::Detection>& found, const std::string& task) {
  std::string j = "[";
  for (size_t i = 0; i < found.size(); ++i) {
    const tvm_ncnn::Detection& d = found[i];
    j += std::string(i ? ", " : "") + "{\"class\": " + std::to_string(d.class_id) + ", \"label\": " +
         JsonString(d.label) + ", \"score\": " + JsonNumber(d.score, "%.6g") + ", \"box\": [" +
         JsonNumber(d.x1, "%.2f") + ", " + JsonNumber(d.y1, "%.2f") + ", " + JsonNumber(d.x2, "%.2f") + ", " +
         JsonNumber(d.y2, "%.2f") + "]";
    if (task == "pose") {
      j += ", \"keypoints\": [";
      for (size_t k = 0; k < d.keypoints.size(); ++k) {
        const tvm_ncnn::Keypoint& p = d.keypoints[k];
        j += std::string(k ? ", " : "") + "[" + JsonNumber(p.x, "%.2f") + ", " + JsonNumber(p.y, "%.2f") + ", " +
             JsonNumber(p.visibility, "%.4f") + "]";
      }
      j += "]";
    }
    if (task == "segment") j += ", \"mask_area\": " + std::to_string(d.mask.area);
    if (task == "obb" && d.rbox.size() == 5) {  // cx, cy, w, h in image pixels, angle in radians
      j += ", \"rbox\": [" + JsonNumber(d.rbox[0], "%.2f") + ", " + JsonNumber(d.rbox[1], "%.2f") + ", " +
           JsonNumber(d.rbox[2], "%.2f") + ", " + JsonNumber(d.rbox[3], "%.2f") + ", " + JsonNumber(d.rbox[4], "%.5f") +
           "]";
    }
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
    if (task == "obb" && d.rbox.size() == 5) {
      std::snprintf(line, sizeof(line), "  (rotated %.1f x %.1f at %.1f deg)", d.rbox[2], d.rbox[3],
                    d.rbox[4] * 57.29577951308232);
      out += line;
    }
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
