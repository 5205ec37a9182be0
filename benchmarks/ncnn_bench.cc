// ncnn_bench: native ncnn, in C++, on a .param/.bin pair (e.g. what pnnx writes), measured exactly the way
// deploy_app measures a model.so, and linked against the SAME vendored ncnn (build/host's libncnn.a) with the
// same options the tvm-ncnn runtime sets. The difference between the two is then tvm-ncnn's own overhead.
//
//   ncnn_bench model.param model.bin input.npy [--threads N] [--repeat N] [--in in0] [--out out0] [--fp16]
//              [--output out.npy]
//
// Prints one JSON object with deploy_app's --json fields: load_ms, first_ms, p50_ms, p90_ms, threads, repeat,
// rss_mb (peak), first_rss_mb / warm_rss_mb / steady_rss_mb (VmRSS after the first run, 10 timed runs, the last
// run), cpu_ms (CPU time per timed run, all threads), times_ms (every timed run). --output saves the output (float32 .npy, batch 1).
//
// Built by the normal build (benchmarks/CMakeLists.txt: target ncnn_bench, against the vendored `ncnn` target)
// into <build>/benchmarks/ncnn_bench, where bench.py runs it; not part of the product (not installed).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_args.h"
#include "measure.h"  // deploy_app/: the same measurements as deploy_app
#include "native_net.h"

#include "cpu.h"
#include "mat.h"
#include "net.h"

namespace {

using measure::CpuMs;
using measure::MsSince;
using measure::PeakRssMb;
using measure::Percentile;

struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// float32, little-endian, C order only (what bench.py writes).
Npy LoadNpy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  char magic[8];
  f.read(magic, 8);
  if (std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not a .npy file");
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    uint16_t h16 = 0;
    f.read(reinterpret_cast<char*>(&h16), 2);
    hlen = h16;
  } else {
    f.read(reinterpret_cast<char*>(&hlen), 4);
  }
  std::string header(hlen, '\0');
  f.read(&header[0], hlen);
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos) {
    throw std::runtime_error(path + ": need a C-order float32 .npy");
  }
  Npy n;
  size_t lp = header.find('(', header.find("'shape'")), rp = header.find(')', lp);
  std::string dims = header.substr(lp + 1, rp - lp - 1);
  size_t count = 1;
  for (size_t at = 0; at < dims.size();) {
    size_t comma = dims.find(',', at);
    std::string d = dims.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    if (d.find_first_of("0123456789") != std::string::npos) {
      n.shape.push_back(std::stoll(d));
      count *= static_cast<size_t>(n.shape.back());
    }
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  n.data.resize(count);
  f.read(reinterpret_cast<char*>(n.data.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (static_cast<size_t>(f.gcount()) != count * sizeof(float)) throw std::runtime_error(path + ": truncated");
  return n;
}

void SaveNpy(const std::string& path, const ncnn::Mat& m) {
  std::string shape = "(1, ";
  if (m.dims == 1) shape += std::to_string(m.w) + ")";
  if (m.dims == 2) shape += std::to_string(m.h) + ", " + std::to_string(m.w) + ")";
  if (m.dims == 3) shape += std::to_string(m.c) + ", " + std::to_string(m.h) + ", " + std::to_string(m.w) + ")";
  if (m.dims == 4) {
    shape += std::to_string(m.c) + ", " + std::to_string(m.d) + ", " + std::to_string(m.h) + ", " +
             std::to_string(m.w) + ")";
  }
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  const uint16_t hlen = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(&hlen), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  const size_t plane = static_cast<size_t>(m.w) * m.h * m.d;
  for (int q = 0; q < (m.dims >= 3 ? m.c : 1); ++q) {
    f.write(static_cast<const char*>(m.channel(q).data), static_cast<std::streamsize>(plane * sizeof(float)));
  }
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  std::string in_blob = "in0", out_blob = "out0", output;
  int threads = 0, repeat = 10;
  bool fp16 = false;
  const bool parsed = bench_args::Parse(argc, argv,
      "ncnn_bench model.param model.bin input.npy [--threads N] [--repeat N] [--in in0] [--out out0] [--fp16] "
      "[--output out.npy]", 3, {
      {"--threads", [&](const std::string& v) { threads = std::atoi(v.c_str()); }},
      {"--repeat", [&](const std::string& v) { repeat = std::max(0, std::atoi(v.c_str())); }},  // 0: one-shot
      {"--in", [&](const std::string& v) { in_blob = v; }},
      {"--out", [&](const std::string& v) { out_blob = v; }},
      {"--fp16", [&](const std::string&) { fp16 = true; }, true},
      {"--output", [&](const std::string& v) { output = v; }},
  });
  if (!parsed) return 2;
  const std::string param = argv[1], bin = argv[2], input = argv[3];
  if (threads <= 0) threads = std::max(1, ncnn::get_big_cpu_count());
  try {
    Npy x = LoadNpy(input);
    if (x.shape.size() != 4 || x.shape[0] != 1) throw std::runtime_error("input must be 1xCxHxW");

    auto t0 = std::chrono::steady_clock::now();
    ncnn::Net net;
    native_net::Load(net, param, bin, threads, fp16);
    const double load_ms = MsSince(t0);

    // The input Mat is built once, as a native ncnn user would; the timed call is extractor + input + extract.
    ncnn::Mat in(static_cast<int>(x.shape[3]), static_cast<int>(x.shape[2]), static_cast<int>(x.shape[1]));
    const size_t plane = static_cast<size_t>(x.shape[2] * x.shape[3]);
    for (int q = 0; q < in.c; ++q) std::memcpy(in.channel(q), x.data.data() + q * plane, plane * sizeof(float));

    auto run = [&](ncnn::Mat* out) { native_net::Run(net, in_blob, in, out_blob, out); };
    ncnn::Mat out;
    t0 = std::chrono::steady_clock::now();
    run(&out);
    const double first_ms = MsSince(t0);
    const double first_rss_mb = measure::CurrentRssMb();
    if (!output.empty()) SaveNpy(output, out);
    std::vector<double> times;
    times.reserve(repeat);
    const double cpu0 = CpuMs();
    double warm_rss_mb = -1;  // after 10 timed runs, as deploy_app
    for (int i = 0; i < repeat; ++i) {
      t0 = std::chrono::steady_clock::now();
      ncnn::Mat o;
      run(&o);
      times.push_back(MsSince(t0));
      if (i + 1 == std::min(10, repeat)) warm_rss_mb = measure::CurrentRssMb();
    }
    // --repeat 0 (bench.py --one-shot): no steady runs, so no steady figures (null, as deploy_app prints them).
    auto num = [&](double v) { return repeat > 0 ? std::to_string(v) : std::string("null"); };
    const std::string cpu_ms = num((CpuMs() - cpu0) / std::max(repeat, 1));
    const std::string p50 = num(repeat > 0 ? Percentile(times, 0.5) : 0);
    const std::string p90 = num(repeat > 0 ? Percentile(times, 0.9) : 0);
    std::string list;
    for (size_t i = 0; i < times.size(); ++i) list += (i ? ", " : "") + std::to_string(times[i]);
    std::printf("{\"load_ms\": %.3f, \"first_ms\": %.3f, \"p50_ms\": %s, \"p90_ms\": %s, \"threads\": %d, "
                "\"repeat\": %d, \"rss_mb\": %.2f, \"first_rss_mb\": %.2f, \"warm_rss_mb\": %s, "
                "\"steady_rss_mb\": %.2f, \"cpu_ms\": %s, \"times_ms\": [%s]}\n",
                load_ms, first_ms, p50.c_str(), p90.c_str(), threads, repeat, PeakRssMb(), first_rss_mb,
                num(warm_rss_mb).c_str(), measure::CurrentRssMb(), cpu_ms.c_str(), list.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ncnn_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
