// ncnn says why it refuses a graph only by printing to stderr (NCNN_LOGE) and returning -1. While a net is
// built, fd 2 goes to a temporary file; what ncnn printed then becomes part of the one-line error instead of
// stray lines before it. On success the text is passed on to the real stderr, so output another thread wrote
// meanwhile is delayed, never lost (on an error, what another thread wrote then is dropped with ncnn's text). One
// capture at a time in the process.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <mutex>
#include <sstream>
#include <string>

namespace tvm_ncnn {

class StderrCapture {
 public:
  StderrCapture() : lock_(Mutex()) {
    std::fflush(stderr);
    file_ = std::tmpfile();
    if (file_ == nullptr) return;  // no temporary file: ncnn prints as usual
    saved_ = dup(STDERR_FILENO);
    if (saved_ < 0 || dup2(fileno(file_), STDERR_FILENO) < 0) Restore();
  }
  // Passes on what was not restored -- unless an error is leaving the scope (a check of the runtime's refused a
  // graph ncnn had read, complaining as it went): that error is the one line, and ncnn's text would be a stray one.
  ~StderrCapture() {
    const std::string text = Restore();
    if (std::uncaught_exceptions() == 0) Pass(text);
  }

  // Restores stderr; returns what was written to it meanwhile, as one line ("a; b").
  std::string Restore() {
    std::string text;
    if (saved_ >= 0) {
      std::fflush(stderr);
      dup2(saved_, STDERR_FILENO);
      close(saved_);
      saved_ = -1;
      std::rewind(file_);
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), file_)) > 0 && text.size() < (1u << 16)) text.append(buf, n);
    }
    if (file_ != nullptr) std::fclose(file_);
    file_ = nullptr;
    std::string joined, line;
    std::istringstream lines(text);
    while (std::getline(lines, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      joined += (joined.empty() ? "" : "; ") + line;
    }
    return joined;
  }
  // Writes text restored but not used to the real stderr.
  static void Pass(const std::string& text) {
    if (!text.empty()) std::fprintf(stderr, "%s\n", text.c_str());
  }

 private:
  static std::mutex& Mutex() {
    static std::mutex mu;
    return mu;
  }
  std::lock_guard<std::mutex> lock_;
  std::FILE* file_ = nullptr;
  int saved_ = -1;
};

}  // namespace tvm_ncnn
