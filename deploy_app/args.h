// deploy_app's command line (args.cc): what it was asked to do, parsed and range-checked.
#pragma once

#include <string>
#include <vector>

namespace deploy_app {

// A usage error: exit code 2.
struct UsageError {
  std::string message;
};

struct Args {
  std::string model, input, output;
  int threads = 0, repeat = 10, topk = 5;
  double score = -1, iou = -1;  // detectors: < 0 the model's defaults
  std::string draw;
  std::string precision;  // "": as exported
  std::string trust;      // a public key file: only models it signed load
  bool json = false, profile = false;
};

std::string Usage();
// Throws UsageError naming the flag or value at fault.
Args ParseArgs(int argc, char** argv);
// "a, b or c" (sep ", ", last " or "), "a|b|c" (both "|"): names from the runtime's tables, as messages list them.
std::string JoinNames(const std::vector<std::string>& names, const std::string& sep, const std::string& last);
// ".jpg" for "x/Photo.JPG"; "" without an extension.
std::string LowerExtension(const std::string& path);

}  // namespace deploy_app
