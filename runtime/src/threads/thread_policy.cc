// The thread policy: which variables deploy_app, C++ apps (tvm_ncnn::CoordinateThreads) and tvm_ncnn.load (through
// libtvm_ncnn_threads.so) set. Its one home.
//
// By default TVM's parallel loops run on ncnn's OpenMP threads (threads/tvm_on_openmp.cc): one pool, waiting as
// libgomp does by default, as native ncnn does. Nothing has to reach libgomp before it loads, so the policy holds
// in Python whoever loaded libgomp first (torch), and deploy_app needs no second exec; only TVM_NUM_THREADS is
// set, for a TVM pool something else may start.
//
// TVM_NCNN_TVM_POOL=tvm keeps TVM's own pool beside libgomp's, as before: then both pools' idle threads spin after
// each parallel loop -- libgomp 300000 pause loops (~8 ms on x86), TVM 300000 sched_yield calls -- and in a model
// where ncnn regions and TVM ops alternate each finds the cores taken by the other; short spins, tens of
// microseconds (GOMP_SPINCOUNT, TVM_THREAD_POOL_SPIN_COUNT below), were the trade measured for that
// (benchmarks/bench.py --threads-study). libgomp reads GOMP_SPINCOUNT once, when it is loaded -- with the runtime
// library -- so a program can only execute itself again (CoordinateThreads does) and Python must set it before
// it loads the runtime: it asks libtvm_ncnn_threads.so, built from this file alone, which loads no libgomp.
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
  // its pool starts. Two pools only when asked for (tvm_on_openmp.cc): then the short spins.
  const char* pool = std::getenv("TVM_NCNN_TVM_POOL");
  if (pool == nullptr || std::strcmp(pool, "tvm") != 0) return text;
  if (!IsSet("TVM_THREAD_POOL_SPIN_COUNT")) add("TVM_THREAD_POOL_SPIN_COUNT", kTvmSpinCount);
  if (!IsSet("OMP_WAIT_POLICY") && !IsSet("GOMP_SPINCOUNT")) add("GOMP_SPINCOUNT", kGompSpinCount);
  return text;
}

}  // extern "C"
