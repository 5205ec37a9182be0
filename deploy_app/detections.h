// deploy_app's view of a detector's results: the text lines and the JSON list it prints (detections.cc).
#pragma once

#include <string>
#include <vector>

#include "tvm_ncnn/detect.h"

namespace deploy_app {

// [{"class": 0, "label": "person", "score": 0.91, "box": [x1, y1, x2, y2]} ...] in original image pixels, plus
// "keypoints": [[x, y, visibility], ...] (pose) and "mask_area" (segment).
std::string DetectionsJson(const std::vector<tvm_ncnn::Detection>& found, const std::string& task);

// One line per detection: "  1. person     0.912  box 12.0,40.5 - 311.2,470.0  (mask 40211 px)".
std::string DetectionsText(const std::vector<tvm_ncnn::Detection>& found, const std::string& task);

}  // namespace deploy_app
