// concurrency_bench: throughput of one model.so from N caller threads, either all on ONE loaded Model (shared
// weights, one execution context per caller) or each on its own Model::Load of the same file (N copies).
// benchmarks/bench_concurrency.py runs it in interleaved rounds and prints the ratios.
//
//   concurrency_bench model.so --callers N --mode shared|separate [--seconds S] [--threads T]
//
// Prints one JSON line: {"callers", "mode", "runs", "seconds", "runs_per_s", "cpus", "rss_mb", "contexts"}.
#include <tvm_ncnn/runtime.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench_args.h"
#include "measure.h"

int main(int argc, char** argv) {
  int callers = 1, threads = 1;
  double seconds = 3;
  std::string mode = "shared";
  if (!bench_args::Parse(argc, argv, "concurrency_bench model.so [--callers N] [--mode shared|separate] "
                                     "[--seconds S] [--threads T]", 1,
                         {{"--callers", [&](const std::string& v) { callers = std::stoi(v); }},
                          {"--mode", [&](const std::string& v) { mode = v; }},
                          {"--seconds", [&](const std::string& v) { seconds = std::stod(v); }},
                          {"--threads", [&](const std::string& v) { threads = std::stoi(v); }}})) {
    return 2;
  }
  if (callers < 1 || (mode != "shared" && mode != "separate")) {
    std::fprintf(stderr, "concurrency_bench: --callers >= 1, --mode shared|separate\n");
    return 2;
  }
  tvm_ncnn::CoordinateThreads(threads, argv);  // both pools `threads` wide (per caller), short spins
  try {
    tvm_ncnn::Options options;
    options.threads = threads;
    std::vector<tvm_ncnn::Model> models;
    models.push_back(tvm_ncnn::Model::Load(argv[1], options));
    if (mode == "separate") {
      for (int i = 1; i < callers; ++i) models.push_back(tvm_ncnn::Model::Load(argv[1], options));
    }
    const tvm_ncnn::TensorInfo& in = models[0].info().inputs[0];
    tvm_ncnn::Tensor x(in.shape, in.dtype);
    // Warm up each caller's model (and, shared, grow the pool to `callers` contexts) before timing.
    std::atomic<bool> stop{false};
    std::atomic<long> runs{0};
    std::vector<std::thread> pool;
    auto worker = [&](int i, bool timed) {
      tvm_ncnn::Model& m = models[mode == "shared" ? 0 : i];
      std::vector<tvm_ncnn::Tensor> y;
      do {
        m.Run({tvm_ncnn::TensorView(x)}, &y);
        if (timed) runs.fetch_add(1, std::memory_order_relaxed);
      } while (timed && !stop.load(std::memory_order_relaxed));
    };
    for (int i = 0; i < callers; ++i) pool.emplace_back(worker, i, false);
    for (std::thread& t : pool) t.join();
    pool.clear();
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = measure::CpuMs();
    for (int i = 0; i < callers; ++i) pool.emplace_back(worker, i, true);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (std::thread& t : pool) t.join();
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // CPUs busy on average: > 1 only when the callers ran at the same time (a shared, noisy machine caps it).
    const double cpus = (measure::CpuMs() - cpu_start) / 1000.0 / took;
    std::printf("{\"callers\": %d, \"mode\": \"%s\", \"runs\": %ld, \"seconds\": %.3f, \"runs_per_s\": %.3f, "
                "\"cpus\": %.2f, \"rss_mb\": %.1f, \"contexts\": %d}\n",
                callers, mode.c_str(), runs.load(), took, runs.load() / took, cpus, measure::CurrentRssMb(),
                models[0].contexts());
  } catch (const tvm_ncnn::Error& e) {
    std::fprintf(stderr, "concurrency_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
