// One offloaded region as ncnn runs it: the ncnn::Net built from the region's .param text and weights, checked
// against the region's recorded inputs and outputs (ncnn itself never checks what it is fed), and run on TVM's
// tensors, viewed or copied in and copied out. The Tensor <-> ncnn::Mat mapping is runtime/FORMAT.md's.
//
// Build and Configure are not thread-safe (the owning module, ncnn/module.cc, serializes them); Run is: the
// built Net is only read, and each call gets its own Extractor (ncnn's per-thread execution state over the shared
// weights) and a CallState -- copy-in Mats and the pool allocators its blobs and workspace come from, as ncnn
// advises one unlocked pool per thread -- taken from a small pool. Model's execution contexts thus run one region
// on several threads at once, with one copy of the weights and no allocator shared between concurrent calls.
#pragma once

#include <allocator.h>
#include <mat.h>
#include <net.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ncnn/steady_pool.h"

namespace tvm_ncnn {

class MappedWeights;

// A dimension a region's tensor takes at any size (a model with dynamic sizes): ncnn computes every blob's
// shape as it runs; the module checks the rest of the shape, the region copies at the size it is given.
constexpr int64_t kDynamicDim = -1;

struct BlobSpec {
  std::string name;
  std::vector<int64_t> shape;  // TVM shape, batch first; kDynamicDim where the size changes from call to call
  int index = -1;              // ncnn blob index, once the net is built
};

// What a region's recorded blobs may be (caps that also keep malformed bytes from asking for absurd memory).
constexpr uint64_t kMaxBlobNameLen = 255;  // ncnn scans blob names with %255s
constexpr uint32_t kMaxTensors = 4096;
constexpr uint32_t kMinNdim = 2;  // batch + at least one ncnn dim
constexpr uint32_t kMaxNdim = 5;  // batch + up to 4 ncnn dims (w, h, d, c)
constexpr int64_t kMaxDim = 2147483647;  // ncnn's int sizes
constexpr int64_t kMaxElements = int64_t(1) << 32;

// Throws ValueError unless the recorded blobs are ones an ncnn region can take (region.cc).
void ValidateBlobs(const std::string& where, const std::vector<BlobSpec>& inputs,
                   const std::vector<BlobSpec>& outputs);

class NcnnRegion {
 public:
  // where: how errors name the region ("ncnn region 'fused_0'").
  NcnnRegion(std::string where, std::vector<BlobSpec> inputs, std::vector<BlobSpec> outputs);

  const std::vector<BlobSpec>& inputs() const { return inputs_; }
  const std::vector<BlobSpec>& outputs() const { return outputs_; }
  bool built() const { return net_ != nullptr; }

  // threads 0: the big cores of this machine. fp16 cannot change once the net is built; the thread count
  // applies to later calls.
  void Configure(int threads, bool fp16);

  // Builds the net: load_param from the text, load_model from the weights, then CheckGraph. Throws ValueError
  // naming what ncnn refused. Without `mapped` the weights are copied (ncnn owns its weights, so the caller may
  // drop its bytes afterwards); with it (weights = mapped->data()) ncnn reads them in place and may keep
  // pointers into them: `mapped` must outlive the net.
  void Build(const std::string& param, const unsigned char* weights, size_t weights_size,
             const MappedWeights* mapped = nullptr);

  // A TVM tensor as a region reads or writes it: float32, contiguous, `shape` (the recorded one, sizes given
  // where it is dynamic: the module has checked it).
  struct Buffer {
    float* data = nullptr;
    const int64_t* shape = nullptr;
  };
  // Runs the built net: buffers[i] holds inputs()[i], buffers[inputs().size() + j] receives outputs()[j].
  void Run(const Buffer* buffers);

 private:
  int EffectiveThreads() const;
  void CheckGraph(const ncnn::Net& net);
  void CheckInputLayer(const ncnn::Net& net, size_t i) const;
  ncnn::Mat WrapInput(size_t i, const Buffer& in) const;
  // What one running call owns; reused by later calls (one per call that ever ran at the same time).
  struct CallState {
    std::vector<ncnn::Mat> in_mats;  // inputs that cannot be viewed are copied here, allocated on first use
    SteadyPool blobs, workspace;
    // An Extractor made once: each call starts from `blank` (assigning it empties every blob in place; making
    // a new Extractor allocates its private part and blob list every call) and goes back to it at the end,
    // which hands the call's blobs back to the pools.
    std::optional<ncnn::Extractor> blank, ex;
  };
  const ncnn::Mat& CopyIn(size_t i, const ncnn::Mat& view, std::vector<ncnn::Mat>* mats);
  bool ReadAsHalf(const ncnn::Net& net, int blob) const;
  std::unique_ptr<CallState> TakeState();
  void ReturnState(std::unique_ptr<CallState> state);
  void CopyOut(const ncnn::Mat& m, size_t j, const Buffer& dst) const;

  const std::string where_;
  std::vector<BlobSpec> inputs_, outputs_;
  int threads_ = 0;
  bool fp16_ = false;
  // Per input: handed to ncnn in fp16 (ReadAsHalf), as ncnn would cast it for its readers on every call.
  std::vector<bool> half_inputs_;
  // Reference count shared by the zero-copy input views (Run): starts far above anything the views can take
  // off it, so it never drops to zero and ncnn never frees the memory they point to. Declared before the Mats
  // so that it outlives any of them holding a view.
  int view_refs_ = 1 << 30;
  std::unique_ptr<ncnn::Net> net_;
  // A call takes a free state (or a new one) and gives it back, so a steady loop allocates nothing. Declared
  // after the net: the states' allocators are freed first, and no Mat of theirs outlives a call.
  std::mutex states_mu_;
  std::vector<std::unique_ptr<CallState>> states_;
};

}  // namespace tvm_ncnn
