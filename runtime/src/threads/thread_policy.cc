// The thread policy: how long idle threads spin, and which variables say so. Its one home; deploy_app and C++
// apps get it through tvm_ncnn::CoordinateThreads, tvm_ncnn.load and benchmarks/bench.py through
// libtvm_ncnn_threads.so.
//
// ncnn runs its layers on OpenMP threads (libgomp), TVM its parallel ops on its own pool, and both keep idle
// threads spinning after each parallel loop -- libgomp 300000 pause loops (~8 ms on x86), TVM 300000
// sched_yield calls -- so whatever runs next (the other pool between ncnn regions and TVM ops, the rest of the
// application, other processes) finds the cores taken, and a run gets several times slower. Sleeping at once
// (OMP_WAIT_POLICY=PASSIVE) avoids that but pays a wake-up at every parallel loop, which costs as much again
// when the machine is idle. Measured on both (benchmarks/bench.py --threads-study), the best trade is a short
// spin, tens of microseconds: enough to bridge the gap between two layers, not to hold a core for someone else.
//
// Why a library of its own: libgomp reads GOMP_SPINCOUNT once, when it is loaded -- and it is loaded with the
// runtime library. A program linked with the runtime can only execute itself again (CoordinateThreads does);
// Python must set the variable before it loads the runtime, so it asks libtvm_ncnn_threads.so, built from this
// file alone next to the runtime library, which needs nothing but the C library and loads no libgomp.
#include "threads/thread_policy.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

#if defined(__aarch64__) || defined(__arm__)
constexpr int kGompSpinCount = 30000;  // libgomp's ARM spin loop has no pause: ~1 ns an iteration
#else
constexpr int kGompSpinCount = 1000;  // x86: one pause each, ~27 ns on the AMD EPYC measured
#endif
constexpr int kTvmSpinCount = 100;  // each a sched_yield, ~0.6 us

bool IsSet(const char* name) { return std::getenv(name) != nullptr; }

}  // namespace

extern "C" {

int tvm_ncnn_gomp_spin_count(void) { return kGompSpinCount; }
int tvm_ncnn_tvm_spin_count(void) { return kTvmSpinCount; }

const char* tvm_ncnn_thread_env(int threads) {
  static thread_local char text[160];
  size_t n = 0;
  auto add = [&](const char* name, int value) {
    n += std::snprintf(text + n, sizeof(text) - n, "%s=%d\n", name, value);
  };
  text[0] = '\0';
  const char* mode = std::getenv("TVM_NCNN_WAIT_POLICY");
  if (mode != nullptr && std::strcmp(mode, "inherit") == 0) return text;
  if (threads > 0 && !IsSet("TVM_NUM_THREADS")) add("TVM_NUM_THREADS", threads);  // TVM reads these when
  if (!IsSet("TVM_THREAD_POOL_SPIN_COUNT")) add("TVM_THREAD_POOL_SPIN_COUNT", kTvmSpinCount);  // its pool starts
  if (!IsSet("OMP_WAIT_POLICY") && !IsSet("GOMP_SPINCOUNT")) add("GOMP_SPINCOUNT", kGompSpinCount);
  return text;
}

}  // extern "C"
