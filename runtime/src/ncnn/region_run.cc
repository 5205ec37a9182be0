// Running a built region: TVM's inputs handed to ncnn (in place when the layout allows, else copied into a Mat
// allocated once per concurrent caller), on the shared Net through the caller's own Extractor and pools (reused:
// steady_pool.h), outputs copied into TVM's tensors. Safe to call from several threads at once (region.h).
#include <tvm/ffi/error.h>

#include <cstring>
#include <sstream>

#include "io/zero_copy.h"
#include "ncnn/probe.h"
#include "ncnn/region.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

// The TVM shape an ncnn::Mat corresponds to (inverse of the FORMAT.md mapping), for messages.
std::vector<int64_t> MatShape(const ncnn::Mat& m) {
  switch (m.dims) {
    case 1: return {1, m.w};
    case 2: return {1, m.h, m.w};
    case 3: return {1, m.c, m.h, m.w};
    case 4: return {1, m.c, m.d, m.h, m.w};
    default: return {};
  }
}

}  // namespace

std::unique_ptr<NcnnRegion::CallState> NcnnRegion::TakeState() {
  {
    std::lock_guard<std::mutex> lock(states_mu_);
    if (!states_.empty()) {
      std::unique_ptr<CallState> state = std::move(states_.back());
      states_.pop_back();
      return state;
    }
  }
  auto state = std::make_unique<CallState>();
  state->in_mats.resize(inputs_.size());
  state->blank.emplace(net_->create_extractor());
  state->ex.emplace(*state->blank);
  return state;
}

void NcnnRegion::ReturnState(std::unique_ptr<CallState> state) {
  std::lock_guard<std::mutex> lock(states_mu_);
  states_.push_back(std::move(state));
}

void NcnnRegion::Run(const Buffer* buffers) {
  const Buffer* in = buffers;
  const Buffer* out = buffers + inputs_.size();
  // Given back on every exit, also when ncnn fails; declared before the Extractor, so it outlives every Mat the
  // call allocated from its pools.
  struct Lease {
    NcnnRegion* region;
    std::unique_ptr<CallState> state;
    ~Lease() {
      *state->ex = *state->blank;  // the call's blobs back to its pools
      region->ReturnState(std::move(state));
    }
  } call{this, TakeState()};
  ncnn::Extractor& ex = *call.state->ex;
  ex.set_blob_allocator(&call.state->blobs);
  ex.set_workspace_allocator(&call.state->workspace);
  const bool probing = probe::Active();  // int8 calibration: keep every blob for probe::Collect (probe.h)
  if (probing) ex.set_light_mode(false);
  for (size_t i = 0; i < inputs_.size(); ++i) {
    // The TVM tensor, seen as an ncnn Mat (no copy). ncnn pads each channel to 16 bytes (cstep): when that
    // adds nothing and the memory allows ncnn's over-reads (SafeToView), ncnn reads the tensor in place. The
    // view's reference count is ours and never reaches zero, so ncnn never frees TVM's memory, and in-place
    // layers see a shared blob and work on a copy instead of writing into the input.
    ncnn::Mat view = WrapInput(i, in[i]);
    const size_t plane = static_cast<size_t>(view.w) * view.h * view.d;  // elements per channel
    const size_t channels = view.dims >= 3 ? static_cast<size_t>(view.c) : 1;
    int rc;
    if (view.cstep == plane && SafeToView(in[i].data, plane * channels * sizeof(float))) {
      view.refcount = &view_refs_;
      NCNN_XADD(view.refcount, 1);
      rc = ex.input(inputs_[i].index, view);
    } else {
      rc = ex.input(inputs_[i].index, CopyIn(i, view, &call.state->in_mats));
    }
    if (rc != 0) {
      TVM_FFI_THROW(RuntimeError) << where_ << ": ncnn rejected input " << i << " ('" << inputs_[i].name
                                  << "'), error " << rc;
    }
  }
  for (size_t j = 0; j < outputs_.size(); ++j) {
    // Released when this call returns: an output Mat kept across calls would keep its block out of ncnn's pool
    // allocator between calls -- a block that may be far larger than the output, since the call's pool
    // (size_compare_ratio 0) hands out any free block big enough.
    ncnn::Mat m;
    int rc = ex.extract(outputs_[j].index, m);
    if (rc != 0 || m.empty()) {
      TVM_FFI_THROW(RuntimeError) << where_ << ": ncnn failed to compute output " << j << " ('"
                                  << outputs_[j].name << "'), error " << rc;
    }
    if (m.elempack != 1) {  // extract() unpacks by default; be safe anyway
      ncnn::Mat unpacked;
      ncnn::convert_packing(m, unpacked, 1, net_->opt);
      m = unpacked;
    }
    if (m.elemsize == 2) {  // fp16 storage on CPUs where extract() does not convert
      ncnn::Mat f32;
      ncnn::cast_float16_to_float32(m, f32, net_->opt);
      m = f32;
    }
    CopyOut(m, j, out[j]);
  }
  if (probing) probe::Collect(where_, ex);
}

// Input i's data as an ncnn Mat header (external data, no reference count): FORMAT.md's mapping.
ncnn::Mat NcnnRegion::WrapInput(size_t i, const Buffer& in) const {
  const int k = static_cast<int>(inputs_[i].shape.size()) - 1;
  auto dim = [&](int j) { return static_cast<int>(in.shape[1 + j]); };
  void* p = in.data;  // ncnn's view type is mutable; in-place layers copy first
  if (k == 1) return ncnn::Mat(dim(0), p);
  if (k == 2) return ncnn::Mat(dim(1), dim(0), p);
  if (k == 3) return ncnn::Mat(dim(2), dim(1), dim(0), p);
  return ncnn::Mat(dim(3), dim(2), dim(1), dim(0), p);
}

// Copies a (channel-padded) input into the call's Mat from its copy set, allocated on first use and again when a
// dynamic input changes size. That Mat holds a reference while ncnn runs, so in-place layers copy instead of
// writing into it.
const ncnn::Mat& NcnnRegion::CopyIn(size_t i, const ncnn::Mat& view, std::vector<ncnn::Mat>* mats) {
  ncnn::Mat& m = (*mats)[i];
  if (m.empty() || m.w != view.w || m.h != view.h || m.d != view.d || m.c != view.c) {
    m.create_like(view);
    if (m.empty()) {
      TVM_FFI_THROW(RuntimeError) << where_ << ": cannot allocate input " << i << " ('" << inputs_[i].name
                                  << "') of shape " << ShapeString(inputs_[i].shape);
    }
  }
  const size_t plane = static_cast<size_t>(m.w) * m.h * m.d;  // elements per channel
  const int channels = m.dims >= 3 ? m.c : 1;
  const float* src = static_cast<const float*>(view.data);
  for (int q = 0; q < channels; ++q) {
    std::memcpy(static_cast<float*>(m.data) + q * m.cstep, src + q * plane, plane * sizeof(float));
  }
  return m;
}

void NcnnRegion::CopyOut(const ncnn::Mat& m, size_t j, const Buffer& out) const {
  const int k = static_cast<int>(outputs_[j].shape.size()) - 1;
  auto dim = [&](int d) { return out.shape[1 + d]; };
  float* dst = out.data;
  bool ok = m.dims == k && m.elemsize == 4u && m.elempack == 1;
  if (ok && k == 1) ok = m.w == dim(0);
  if (ok && k == 2) ok = m.h == dim(0) && m.w == dim(1);
  if (ok && k == 3) ok = m.c == dim(0) && m.h == dim(1) && m.w == dim(2);
  if (ok && k == 4) ok = m.c == dim(0) && m.d == dim(1) && m.h == dim(2) && m.w == dim(3);
  if (!ok) {
    std::ostringstream got;
    got << ShapeString(MatShape(m)) << " (ncnn Mat dims=" << m.dims << " w=" << m.w << " h=" << m.h
        << " d=" << m.d << " c=" << m.c << " elemsize=" << m.elemsize << " elempack=" << m.elempack << ")";
    TVM_FFI_THROW(ValueError) << where_ << ": output " << j << " ('" << outputs_[j].name
                              << "') shape mismatch: expected "
                              << ShapeString(std::vector<int64_t>(out.shape, out.shape + k + 1)) << ", ncnn produced "
                              << got.str();
  }
  const size_t plane = static_cast<size_t>(m.w) * m.h * m.d;
  const int channels = m.dims >= 3 ? m.c : 1;
  for (int q = 0; q < channels; ++q) {
    std::memcpy(dst + q * plane, static_cast<const float*>(m.data) + q * m.cstep, plane * sizeof(float));
  }
}

}  // namespace tvm_ncnn
