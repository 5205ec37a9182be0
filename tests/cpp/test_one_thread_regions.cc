// threads/one_thread_regions.cc against libgomp itself: this program's OpenMP regions go through the wrapper as
// ncnn's do in the runtime (it is compiled in and the program linked with --wrap=GOMP_parallel).
//   * a region of one thread runs on the caller (omp_get_level() stays 0: libgomp's team of one would be level
//     1), does every iteration, and allocates nothing (libgomp mallocs a team of one each time);
//   * inside a team of two, each thread's region of one is libgomp's nested team again, and does every iteration
//     itself (run on the caller, it would see the outer team and do half);
//   * a region of two is libgomp's, as before.
#include <omp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "check.h"

extern "C" {
void* __libc_malloc(size_t);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_count{0};

constexpr int kIterations = 1000;

long SumOneThread(int* level) {
  long sum = 0;
#pragma omp parallel for num_threads(1) reduction(+ : sum)
  for (int i = 0; i < kIterations; ++i) {
    sum += i;
    if (i == 0) *level = omp_get_level();
  }
  return sum;
}

}  // namespace

extern "C" void* malloc(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_count.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}

int main() {
  const long all = static_cast<long>(kIterations) * (kIterations - 1) / 2;

  int level = -1;
  CHECK(SumOneThread(&level) == all);
  CHECK(level == 0);

  g_counting = true;
  long sums = 0;
  for (int i = 0; i < 100; ++i) sums += SumOneThread(&level);
  g_counting = false;
  CHECK(sums == 100 * all);
  std::printf("100 regions of one thread: %ld allocations\n", g_count.load());
  CHECK(g_count == 0);

  long inner[2] = {0, 0};
  int inner_level[2] = {-1, -1};
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    if (omp_get_num_threads() == 2) inner[t] = SumOneThread(&inner_level[t]);
  }
  for (int t = 0; t < 2; ++t) {
    CHECK(inner[t] == all);
    CHECK(inner_level[t] == 2);
  }

  long sum = 0;
  int threads = 0;
#pragma omp parallel for num_threads(2) reduction(+ : sum)
  for (int i = 0; i < kIterations; ++i) {
    sum += i;
    if (i == 0) threads = omp_get_num_threads() * 10 + omp_get_level();
  }
  CHECK(sum == all);
  CHECK(threads == 21);
  return Finish("test_one_thread_regions");
}
