// Core detection, the versions the build stamped in, and the thread policy (CoordinateThreads).
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>

#include "check.h"

static std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "(unset)";
}

int main() {
  const int n = tvm_ncnn::DetectThreads();
  std::printf("DetectThreads() = %d; sdk %s, tvm %s, ncnn %s\n", n, tvm_ncnn::SdkVersion(), tvm_ncnn::TvmVersion(),
              tvm_ncnn::NcnnVersion());
  CHECK(n >= 1);
  CHECK(n <= tvm_ncnn::kMaxThreads);
  CHECK(std::strlen(tvm_ncnn::SdkVersion()) > 0);
  CHECK(std::strlen(tvm_ncnn::TvmVersion()) > 0);
  CHECK(std::strlen(tvm_ncnn::NcnnVersion()) > 0);

  const char* vars[] = {"TVM_NCNN_WAIT_POLICY", "TVM_NUM_THREADS", "TVM_THREAD_POOL_SPIN_COUNT", "GOMP_SPINCOUNT",
                        "OMP_WAIT_POLICY", "TVM_NCNN_TVM_POOL"};
  for (const char* v : vars) unsetenv(v);
  // inherit: nothing is set.
  setenv("TVM_NCNN_WAIT_POLICY", "inherit", 1);
  tvm_ncnn::CoordinateThreads(3, nullptr);
  CHECK(Env("TVM_NUM_THREADS") == "(unset)" && Env("GOMP_SPINCOUNT") == "(unset)");
  unsetenv("TVM_NCNN_WAIT_POLICY");
  // A user's setting wins; OMP_WAIT_POLICY keeps GOMP_SPINCOUNT unset; argv == nullptr: no second execution.
  setenv("TVM_THREAD_POOL_SPIN_COUNT", "7", 1);
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  tvm_ncnn::CoordinateThreads(3, nullptr);
  CHECK(Env("TVM_NUM_THREADS") == "3");
  CHECK(Env("TVM_THREAD_POOL_SPIN_COUNT") == "7");
  CHECK(Env("GOMP_SPINCOUNT") == "(unset)");
  unsetenv("OMP_WAIT_POLICY");
  // One pool (the default: TVM's loops on ncnn's OpenMP threads) leaves libgomp's wait alone ...
  tvm_ncnn::CoordinateThreads(0, nullptr);
  CHECK(Env("TVM_NUM_THREADS") == "3");
  CHECK(Env("GOMP_SPINCOUNT") == "(unset)");
  // ... two pools (TVM_NCNN_TVM_POOL=tvm) get the short spins.
  setenv("TVM_NCNN_TVM_POOL", "tvm", 1);
  tvm_ncnn::CoordinateThreads(0, nullptr);
  CHECK(Env("GOMP_SPINCOUNT") != "(unset)");
  unsetenv("TVM_NCNN_TVM_POOL");
  return Finish("test_threads");
}
