// TVM's parallel loops on ncnn's OpenMP threads: one thread pool for the whole model.
//
// Why: ncnn runs its layers on OpenMP (libgomp) threads and TVM its parallel ops on a pool of its own. Idle
// threads of either pool spin for a while before they sleep, so in a model where ncnn regions and TVM ops
// alternate each pool found the cores still taken by the other. The old answer was short spins for both
// (GOMP_SPINCOUNT=1000) -- but libgomp reads GOMP_SPINCOUNT once, when it is loaded, so in Python it was lost
// whenever torch (which ships its own libgomp.so.1) was imported first, and the short spin cost 13-39% at 2 threads
// on an idle machine on models that are one ncnn region, against native ncnn with libgomp's defaults. With one
// pool there is nothing to coordinate: TVM's loops run on the same OpenMP threads ncnn's layers run on, with
// whatever wait policy libgomp has -- its default, native ncnn's -- whoever loaded it first.
//
// How: TVM's code in model.so calls parallel loops through a function pointer of its own, the variable
// `__TVMBackendParallelLaunch` (and `__TVMBackendParallelBarrier`) that TVM's loader sets to libtvm_runtime's
// thread pool when it loads the library. After loading, the runtime points them here instead
// (TVM_NCNN_TVM_POOL=tvm keeps TVM's pool and the old short spins; runtime.h CoordinateThreads).
#include "threads/tvm_on_openmp.h"

#include <dlfcn.h>
#include <omp.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace tvm_ncnn {
namespace {

// TVM's C backend ABI for parallel loops (tvm/runtime/c_backend_api.h, which the wheels do not ship whole):
// the lambda runs task_id of penv->num_task tasks and splits the loop by them.
struct ParallelGroupEnv {
  void* sync_handle;
  int32_t num_task;
};
using ParallelLambda = int (*)(int task_id, ParallelGroupEnv* penv, void* cdata);
using ParallelLaunch = int (*)(ParallelLambda flambda, void* cdata, int num_task);
using ParallelBarrier = int (*)(int task_id, ParallelGroupEnv* penv);

std::atomic<int> g_threads{1};  // the threads of the model loaded last (TVM's pool is one per process too)

int OpenMPParallelLaunch(ParallelLambda flambda, void* cdata, int num_task) {
  // num_task 0: "all the pool's threads"; TVM never asks for more than its pool has
  const int threads = num_task > 0 ? num_task : g_threads.load(std::memory_order_relaxed);
  if (threads <= 1 || omp_in_parallel()) {
    ParallelGroupEnv env{nullptr, 1};
    return flambda(0, &env, cdata);
  }
  std::atomic<int> failed{0};
#pragma omp parallel num_threads(threads)
  {
    // every task sees the same count, however many threads OpenMP gave the team
    ParallelGroupEnv env{nullptr, omp_get_num_threads()};
    if (flambda(omp_get_thread_num(), &env, cdata) != 0) failed.store(1, std::memory_order_relaxed);
  }
  return failed.load() != 0 ? -1 : 0;
}

int OpenMPParallelBarrier(int, ParallelGroupEnv*) {
#pragma omp barrier
  return 0;
}

bool UseTvmPool() {
  const char* pool = std::getenv("TVM_NCNN_TVM_POOL");
  return pool != nullptr && std::strcmp(pool, "tvm") == 0;
}

}  // namespace

bool RunTvmLoopsOnOpenMP(const std::string& library_path, int threads) {
  g_threads.store(threads < 1 ? 1 : threads, std::memory_order_relaxed);
  if (UseTvmPool()) return false;
  // The handle of the library TVM's loader opened (RTLD_NOLOAD: never a second copy)
  void* lib = dlopen(library_path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (lib == nullptr) return false;
  auto* launch = static_cast<ParallelLaunch*>(dlsym(lib, "__TVMBackendParallelLaunch"));
  auto* barrier = static_cast<ParallelBarrier*>(dlsym(lib, "__TVMBackendParallelBarrier"));
  if (launch != nullptr) *launch = OpenMPParallelLaunch;
  if (barrier != nullptr) *barrier = OpenMPParallelBarrier;
  dlclose(lib);
  return true;
}

std::string ThreadPolicy(bool tvm_on_openmp) {
  std::string wait = "libgomp's default wait (native ncnn's)";
  if (const char* policy = std::getenv("OMP_WAIT_POLICY")) wait = std::string("OMP_WAIT_POLICY=") + policy;
  if (const char* spin = std::getenv("GOMP_SPINCOUNT")) wait = std::string("GOMP_SPINCOUNT=") + spin;
  if (tvm_on_openmp) return "one pool: TVM ops on ncnn's OpenMP threads, " + wait;
  const char* tvm_spin = std::getenv("TVM_THREAD_POOL_SPIN_COUNT");
  return "two pools: ncnn on OpenMP (" + wait + "), TVM on its own (spin " +
         (tvm_spin != nullptr ? tvm_spin : "TVM's default") + ")";
}

}  // namespace tvm_ncnn
