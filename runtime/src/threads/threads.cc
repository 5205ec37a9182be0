// Threads: how many this machine offers (ncnn's count of big cores), and the policy applied to a process.
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <string>

#include "cpu.h"  // ncnn
#include "threads/thread_policy.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

int DetectThreads() {
  const int n = ncnn::get_big_cpu_count();
  return n < 1 ? 1 : n > kMaxThreads ? kMaxThreads : n;
}

void CoordinateThreads(int threads, char** argv) {
  std::istringstream lines(tvm_ncnn_thread_env(threads > 0 ? threads : DetectThreads()));
  bool set_gomp = false;
  for (std::string line; std::getline(lines, line);) {
    const size_t eq = line.find('=');
    const std::string name = line.substr(0, eq);
    if (setenv(name.c_str(), line.c_str() + eq + 1, 1) == 0 && name == "GOMP_SPINCOUNT") set_gomp = true;
  }
  if (!set_gomp || argv == nullptr) return;
  execv("/proc/self/exe", argv);  // returns only on failure
  unsetenv("GOMP_SPINCOUNT");     // this process keeps libgomp's defaults: do not pretend otherwise
}

}  // namespace tvm_ncnn
