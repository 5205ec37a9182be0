// Core detection and the versions the build stamped in.
#include <cstring>
#include <initializer_list>

#include "check.h"

int main() {
  const int n = tvm_ncnn::DetectThreads();
  std::printf("DetectThreads() = %d; sdk %s, tvm %s, ncnn %s\n", n, tvm_ncnn::SdkVersion(), tvm_ncnn::TvmVersion(),
              tvm_ncnn::NcnnVersion());
  CHECK(n >= 1);
  CHECK(n <= 4096);
  CHECK(std::strlen(tvm_ncnn::SdkVersion()) > 0);
  CHECK(std::strlen(tvm_ncnn::TvmVersion()) > 0);
  CHECK(std::strlen(tvm_ncnn::NcnnVersion()) > 0);
  return Finish("test_threads");
}
