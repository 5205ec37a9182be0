// FormatProfile: the profile table deploy_app --profile and tvm_ncnn's profile() print, written once here so
// that both print the same thing.
#include <cstdio>
#include <string>
#include <vector>

#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

template <typename... T>
std::string Printf(const char* fmt, T... values) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), fmt, values...);
  return buf;
}

}  // namespace

std::string FormatProfile(const ProfileReport& report) {
  std::string out = "profile  " + std::to_string(report.runs) + " run" + (report.runs == 1 ? "" : "s") + ", " +
                    Printf("%.3f ms per run", report.run_ms) + " (timed call by call)";
  // the threads the time was measured with, and how they wait (Model::thread_policy): times mean nothing without
  if (report.threads > 0) out += "; " + std::to_string(report.threads) + " threads, " + report.thread_policy;
  out += "\n";
  out += "     ms/run   share   calls  kind         name\n";
  for (const ProfileRow& row : report.rows) {
    // Names go last and whole: TVM's fused function names are long, and a cut name cannot be looked up.
    out += Printf("  %9.3f  %5.1f%%  %6.6g", row.ms, 100 * row.share, row.calls);
    out += "  " + row.kind + std::string(row.kind.size() < 11 ? 11 - row.kind.size() : 0, ' ') + "  " + row.name;
    if (row.ncnn_layers >= 0) out += " (" + std::to_string(row.ncnn_layers) + " layers)";
    out += "\n";
  }
  // The split the question "is what stays in TVM small?" needs, in one line.
  std::string by_kind;
  for (const char* kind : {"ncnn region", "tvm", "vm", "other"}) {
    int n = 0;
    for (const ProfileRow& row : report.rows) n += row.kind == kind;
    if (n == 0) continue;
    const std::string what = std::string(kind) == "ncnn region" ? (n == 1 ? " region" : " regions")
                             : std::string(kind) == "tvm"       ? (n == 1 ? " function" : " functions")
                                                                : "";
    if (!by_kind.empty()) by_kind += ", ";
    by_kind += (std::string(kind) == "ncnn region" ? "ncnn" : kind) + Printf(" %.1f%%", 100 * report.KindShare(kind));
    if (!what.empty()) by_kind += " (" + std::to_string(n) + what + ")";
  }
  out += "by kind  " + by_kind + "\n";
  return out;
}

}  // namespace tvm_ncnn
