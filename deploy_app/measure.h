// How deploy_app measures a run -- latency percentiles, CPU time, resident memory -- in one place, so that
// benchmarks/ncnn_bench.cc measures native ncnn exactly the same way.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace measure {

inline double Percentile(std::vector<double> v, double p) {  // nearest rank
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * v.size()));
  return v[rank == 0 ? 0 : rank - 1];
}

inline double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// A "Vm...:" line of /proc/self/status, in MB; -1 where there is no /proc.
inline double ProcStatusMb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, n, key) == 0) return std::strtod(line.c_str() + n, nullptr) / 1024.0;
  }
  return -1;
}

// Peak resident memory of this program, in MB. getrusage's ru_maxrss is the answer only for a process that was
// not started by a bigger one: Linux carries the maximum across fork and exec, so deploy_app launched from a
// 800 MB Python process would report 800 MB. VmHWM (the high-water mark of this program's own address space)
// has no such inheritance; getrusage is the fallback where /proc is missing.
inline double PeakRssMb() {
  const double hwm = ProcStatusMb("VmHWM:");
  if (hwm >= 0) return hwm;
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

// Resident memory now, in MB.
inline double CurrentRssMb() { return ProcStatusMb("VmRSS:"); }

// CPU time (user + system, all threads) this process has used so far, in ms.
inline double CpuMs() {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

}  // namespace measure
