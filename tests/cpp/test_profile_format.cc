// FormatProfile and ProfileReport::KindShare: the table deploy_app --profile and tvm_ncnn's profile() print.
// (Model::Profile itself needs a model.so: tests/python/test_profile.py runs it on one.)
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "check.h"

using tvm_ncnn::ProfileReport;
using tvm_ncnn::ProfileRow;

static ProfileRow Row(const std::string& name, const std::string& kind, double calls, double ms, int layers = -1) {
  ProfileRow r;
  r.name = name;
  r.kind = kind;
  r.calls = calls;
  r.ms = ms;
  r.share = ms / 2.0;  // the report below runs 2 ms
  r.ncnn_layers = layers;
  return r;
}

static std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

int main() {
  ProfileReport report;
  report.runs = 3;
  report.run_ms = 2.0;
  const std::string long_name = "fused_conv2d_add_erf_multiply_add_with_a_name_longer_than_any_column_would_be";
  report.rows = {Row("ncnn_region_0", "ncnn region", 1, 1.2, 57), Row(long_name, "tvm", 12, 0.5),
                 Row("ncnn_region_1", "ncnn region", 1, 0.2, 3), Row("other stuff", "other", 1, 0.06),
                 Row("vm.builtin.alloc_tensor", "vm", 7, 0.04)};

  CHECK(std::fabs(report.KindShare("ncnn region") - 0.7) < 1e-9);
  CHECK(std::fabs(report.KindShare("tvm") - 0.25) < 1e-9);
  CHECK(report.KindShare("nothing") == 0);

  const std::vector<std::string> lines = Lines(tvm_ncnn::FormatProfile(report));
  CHECK(lines.size() == 2 + report.rows.size() + 1);
  if (lines.size() != 2 + report.rows.size() + 1) return Finish("test_profile_format");
  CHECK(lines[0] == "profile  3 runs, 2.000 ms per run (timed call by call)");
  CHECK(lines[1].find("ms/run") != std::string::npos && lines[1].find("share") != std::string::npos);
  // each row in the report's order, with its ms, share, calls, kind and whole name; regions with their layers
  CHECK(lines[2].find("1.200") != std::string::npos && lines[2].find("60.0%") != std::string::npos);
  CHECK(lines[2].find("ncnn region  ncnn_region_0 (57 layers)") != std::string::npos);
  CHECK(lines[3].find(" 12  ") != std::string::npos && lines[3].find(long_name) != std::string::npos);
  CHECK(lines[3].find("layers") == std::string::npos);
  CHECK(lines[6].find("vm.builtin.alloc_tensor") != std::string::npos);
  CHECK(lines.back() == "by kind  ncnn 70.0% (2 regions), tvm 25.0% (1 function), vm 2.0%, other 3.0%");

  // An empty report (no rows) still prints a header and a summary line without kinds.
  ProfileReport empty;
  const std::vector<std::string> few = Lines(tvm_ncnn::FormatProfile(empty));
  CHECK(few.size() == 3 && few.back() == "by kind  ");
  return Finish("test_profile_format");
}
