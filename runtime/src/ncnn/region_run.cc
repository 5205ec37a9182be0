// Running a built region: TVM's inputs handed to ncnn (in place when the layout allows, else copied -- in fp16 where
// ncnn stores fp16 -- into a Mat allocated once per concurrent caller), on the shared Net through the caller's own
// Extractor and pools (reused: steady_pool.h), outputs unpacked into TVM's tensors. Safe to call from several
// threads at once (region.h).
#include <tvm/ffi/error.h>

#include <cstdint>
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

// IEEE half -> float; only ARM builds store blobs in fp16 (ncnn's fp16 storage), where the conversion is native.
inline float HalfToFloat(uint16_t h) {
#if defined(__aarch64__)
  __fp16 v;
  std::memcpy(&v, &h, sizeof(v));
  return static_cast<float>(v);
#else
  return ncnn::float16_to_float32(h);
#endif
}

// float -> IEEE half, rounded to nearest even as ncnn's Cast rounds (only where ncnn stores fp16: ARMv8.2).
inline uint16_t FloatToHalf(float f) {
#if defined(__aarch64__)
  const __fp16 v = static_cast<__fp16>(f);
  uint16_t h;
  std::memcpy(&h, &v, sizeof(h));
  return h;
#else
  return ncnn::float32_to_float16(f);
#endif
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
    if (!half_inputs_[i] && view.cstep == plane && SafeToView(in[i].data, plane * channels * sizeof(float))) {
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
    // Taken as ncnn left it (type 1): extract()'s own unpacking and fp16 widening create a Packing or Cast layer
    // and a Mat every call; CopyOut does both on its way into TVM's tensor, in the one pass it makes anyway.
    ncnn::Mat m;
    int rc = ex.extract(outputs_[j].index, m, 1);
    if (rc != 0 || m.empty()) {
      TVM_FFI_THROW(RuntimeError) << where_ << ": ncnn failed to compute output " << j << " ('"
                                  << outputs_[j].name << "'), error " << rc;
    }
    if (m.elembits() == 8) {  // an int8 blob (none of our int8 chains end in one; ncnn's own cast, as type 0)
      ncnn::Mat f32;
      ncnn::cast_int8_to_float32(m, f32, net_->opt);
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
// dynamic input changes size; in fp16 where its readers store fp16 (ReadAsHalf). That Mat holds a reference while
// ncnn runs, so in-place layers copy instead of writing into it.
const ncnn::Mat& NcnnRegion::CopyIn(size_t i, const ncnn::Mat& view, std::vector<ncnn::Mat>* mats) {
  ncnn::Mat& m = (*mats)[i];
  const bool half = half_inputs_[i];
  const size_t elemsize = half ? 2u : 4u;
  if (m.empty() || m.dims != view.dims || m.w != view.w || m.h != view.h || m.d != view.d || m.c != view.c ||
      m.elemsize != elemsize) {
    if (view.dims == 1) m.create(view.w, elemsize);
    if (view.dims == 2) m.create(view.w, view.h, elemsize);
    if (view.dims == 3) m.create(view.w, view.h, view.c, elemsize);
    if (view.dims == 4) m.create(view.w, view.h, view.d, view.c, elemsize);
    if (m.empty()) {
      TVM_FFI_THROW(RuntimeError) << where_ << ": cannot allocate input " << i << " ('" << inputs_[i].name
                                  << "') of shape " << ShapeString(inputs_[i].shape);
    }
  }
  const size_t plane = static_cast<size_t>(m.w) * m.h * m.d;  // elements per channel
  const int channels = m.dims >= 3 ? m.c : 1;
  const float* src = static_cast<const float*>(view.data);
  for (int q = 0; q < channels; ++q, src += plane) {
    if (half) {
      uint16_t* dst = static_cast<uint16_t*>(m.data) + q * m.cstep;
      for (size_t k = 0; k < plane; ++k) dst[k] = FloatToHalf(src[k]);
    } else {
      std::memcpy(static_cast<float*>(m.data) + q * m.cstep, src, plane * sizeof(float));
    }
  }
  return m;
}

// One output into TVM's tensor: unpacked (ncnn keeps `elempack` channels -- or rows of a 2-D blob, elements of a
// 1-D one -- interleaved), widened from fp16 where ncnn stored it so (ARM), each channel's padding (cstep) dropped.
void NcnnRegion::CopyOut(const ncnn::Mat& m, size_t j, const Buffer& out) const {
  const int k = static_cast<int>(outputs_[j].shape.size()) - 1;
  auto dim = [&](int d) { return out.shape[1 + d]; };
  const int pack = m.elempack;
  const int bits = m.elembits();
  bool ok = m.dims == k && (bits == 32 || bits == 16) && pack >= 1;
  if (ok && k == 1) ok = static_cast<int64_t>(m.w) * pack == dim(0);
  if (ok && k == 2) ok = static_cast<int64_t>(m.h) * pack == dim(0) && m.w == dim(1);
  if (ok && k == 3) ok = static_cast<int64_t>(m.c) * pack == dim(0) && m.h == dim(1) && m.w == dim(2);
  if (ok && k == 4) ok = static_cast<int64_t>(m.c) * pack == dim(0) && m.d == dim(1) && m.h == dim(2) && m.w == dim(3);
  if (!ok) {
    std::ostringstream got;
    got << ShapeString(MatShape(m)) << " (ncnn Mat dims=" << m.dims << " w=" << m.w << " h=" << m.h
        << " d=" << m.d << " c=" << m.c << " elemsize=" << m.elemsize << " elempack=" << m.elempack << ")";
    TVM_FFI_THROW(ValueError) << where_ << ": output " << j << " ('" << outputs_[j].name
                              << "') shape mismatch: expected "
                              << ShapeString(std::vector<int64_t>(out.shape, out.shape + k + 1)) << ", ncnn produced "
                              << got.str();
  }
  // In ncnn's terms: `groups` packed groups (channels; rows of a 2-D blob; elements of a 1-D one) of `run`
  // elements each, `step` elements apart (a channel's is padded to 16 bytes).
  const size_t groups = static_cast<size_t>(k >= 3 ? m.c : k == 2 ? m.h : m.w);
  const size_t run = k >= 3 ? static_cast<size_t>(m.w) * m.h * m.d : k == 2 ? static_cast<size_t>(m.w) : 1;
  const size_t step = k >= 3 ? m.cstep : run;
  // Read in memory order, written to `pack` streams at once: each cache line of the blob is read once.
  for (size_t g = 0; g < groups; ++g) {
    float* const dst = out.data + g * pack * run;
    if (bits == 32) {
      const float* src = static_cast<const float*>(m.data) + g * step * pack;
      if (pack == 1) {
        std::memcpy(dst, src, run * sizeof(float));
        continue;
      }
      for (size_t i = 0; i < run; ++i, src += pack) {
        for (int lane = 0; lane < pack; ++lane) dst[lane * run + i] = src[lane];
      }
    } else {
      const uint16_t* src = static_cast<const uint16_t*>(m.data) + g * step * pack;
      for (size_t i = 0; i < run; ++i, src += pack) {
        for (int lane = 0; lane < pack; ++lane) dst[lane * run + i] = HalfToFloat(src[lane]);
      }
    }
  }
}

}  // namespace tvm_ncnn
