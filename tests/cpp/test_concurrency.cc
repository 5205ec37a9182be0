// Concurrency, on real models: tests/reliability/test_concurrency.py runs this with two exported model.so files
// in TVM_NCNN_CONCURRENCY_MODELS ("a.so:b.so"); under ctest alone there is no model and nothing to do.
//   1. each model on its own thread, both at once: every output equals the model's single-threaded output;
//   2. one Model called from four threads at once, each with its own input: every output is exactly what that
//      input gives alone (each concurrent call runs on its own execution context -- VM, input buffers, ncnn
//      Extractor and copy-in Mats -- over the shared weights; were any of them shared, outputs would mix). The
//      contexts the model grew are printed, not checked: calls this short overlap only when the scheduler lets
//      them (on a busy machine 600 calls of the tiny models may never have);
//   3. the same file loaded twice: two Models, run in parallel.
// Threads are 1 per model so that outputs are bit-for-bit reproducible.
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "check.h"

namespace {

constexpr int kIterations = 150;

tvm_ncnn::Tensor Input(const tvm_ncnn::Model& model, int seed) {
  tvm_ncnn::Tensor t(model.info().inputs[0].shape, model.info().inputs[0].dtype);
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::sin(0.37f * seed + 0.01f * static_cast<float>(i));
  return t;
}

bool Same(const std::vector<tvm_ncnn::Tensor>& a, const std::vector<tvm_ncnn::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].shape != b[i].shape || a[i].bytes != b[i].bytes) return false;
  }
  return true;
}

// Runs `work(thread index)` on n threads started together; returns how many runs gave a wrong output.
template <typename Work>
int OnThreads(int n, Work work) {
  std::atomic<int> wrong{0}, ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < n) std::this_thread::yield();  // start together: the calls overlap
      try {
        wrong.fetch_add(work(t));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "thread %d: %s\n", t, e.what());
        wrong.fetch_add(1000000);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  return wrong.load();
}

}  // namespace

int main() {
  const char* list = std::getenv("TVM_NCNN_CONCURRENCY_MODELS");
  if (list == nullptr || *list == '\0') {
    std::printf("test_concurrency: TVM_NCNN_CONCURRENCY_MODELS not set, nothing to do "
                "(tests/reliability/test_concurrency.py runs it on exported models)\n");
    return 0;
  }
  const std::string models(list);
  const size_t colon = models.find(':');
  CHECK(colon != std::string::npos);
  if (colon == std::string::npos) return Finish("test_concurrency");
  const std::string path_a = models.substr(0, colon), path_b = models.substr(colon + 1);

  tvm_ncnn::Options one_thread;
  one_thread.threads = 1;
  tvm_ncnn::Model a = tvm_ncnn::Model::Load(path_a, one_thread);
  tvm_ncnn::Model b = tvm_ncnn::Model::Load(path_b, one_thread);

  // 1. Two models, one thread each.
  const tvm_ncnn::Tensor xa = Input(a, 1), xb = Input(b, 2);
  const std::vector<tvm_ncnn::Tensor> ya = a.Run({xa}), yb = b.Run({xb});
  int wrong = OnThreads(2, [&](int t) {
    int bad = 0;
    for (int i = 0; i < kIterations; ++i) bad += t == 0 ? !Same(a.Run({xa}), ya) : !Same(b.Run({xb}), yb);
    return bad;
  });
  std::printf("two models on two threads: %d wrong of %d runs\n", wrong, 2 * kIterations);
  CHECK(wrong == 0);

  // 2. One model, four threads, four inputs.
  constexpr int kThreads = 4;
  std::vector<tvm_ncnn::Tensor> xs;
  std::vector<std::vector<tvm_ncnn::Tensor>> expected;
  for (int t = 0; t < kThreads; ++t) {
    xs.push_back(Input(a, 10 + t));
    expected.push_back(a.Run({xs.back()}));
  }
  for (int t = 1; t < kThreads; ++t) CHECK(!Same(expected[t], expected[0]));  // the inputs do tell apart
  wrong = OnThreads(kThreads, [&](int t) {
    int bad = 0;
    for (int i = 0; i < kIterations; ++i) bad += !Same(a.Run({xs[t]}), expected[t]);
    return bad;
  });
  std::printf("one model on %d threads: %d wrong of %d runs, %d execution contexts\n", kThreads, wrong,
              kThreads * kIterations, a.contexts());
  CHECK(wrong == 0);
  CHECK(a.contexts() >= 1 && a.contexts() <= kThreads);

  // 3. The same file loaded twice: independent Models.
  tvm_ncnn::Model a2 = tvm_ncnn::Model::Load(path_a, one_thread);
  wrong = OnThreads(2, [&](int t) {
    tvm_ncnn::Model& m = t == 0 ? a : a2;
    int bad = 0;
    for (int i = 0; i < kIterations; ++i) bad += !Same(m.Run({xs[t]}), expected[t]);
    return bad;
  });
  std::printf("one file loaded twice, two threads: %d wrong of %d runs\n", wrong, 2 * kIterations);
  CHECK(wrong == 0);

  return Finish("test_concurrency");
}
