// Running a loaded Model: every call leases an execution context from the model's pool (model_impl.h), so calls
// on several threads run at once; the weights stay shared. Inputs are read in place when TVM's code may read
// them there, else copied into the context's buffers; outputs are copied once out of the VM's pooled memory.
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <cstring>

#include "ffi_util.h"
#include "io/zero_copy.h"
#include "model_impl.h"
#include "profile/profile.h"

namespace tvm_ncnn {

namespace ffi = tvm::ffi;

namespace {

// A relax tuple comes back as an ffi Array (possibly nested); flatten it in order.
void CollectOutputs(const ffi::Any& v, std::vector<ffi::Tensor>* out) {
  if (auto t = v.as<ffi::Tensor>()) {
    out->push_back(*t);
  } else if (auto a = v.as<ffi::Array<ffi::Any>>()) {
    for (const ffi::Any& x : *a) CollectOutputs(x, out);
  } else {
    throw Error("output " + std::to_string(out->size()) + " is a " + v.GetTypeKey() + ", not a tensor");
  }
}

// A context for the length of one call: taken from the idle list (or made, when every one is busy) and given
// back on every exit, so a failed run leaves the pool as it was.
class Lease {
 public:
  explicit Lease(Model::Impl& m) : m_(m) {
    {
      std::lock_guard<std::mutex> lock(m_.mu);
      if (!m_.idle.empty()) {
        ctx_ = std::move(m_.idle.back());
        m_.idle.pop_back();
        return;
      }
      ++m_.created;  // counted before the slow part, outside the lock
    }
    try {
      ctx_ = NewContext(m_);
    } catch (...) {
      std::lock_guard<std::mutex> lock(m_.mu);
      --m_.created;
      throw;
    }
  }
  ~Lease() {
    std::lock_guard<std::mutex> lock(m_.mu);
    m_.idle.push_back(std::move(ctx_));
  }
  Model::Context& operator*() { return *ctx_; }

 private:
  Model::Impl& m_;
  std::unique_ptr<Model::Context> ctx_;
};

// Wraps caller memory as a TVM tensor without owning it.
struct BorrowedAlloc {
  void AllocData(DLTensor* t) { t->data = data; }
  void FreeData(DLTensor*) {}
  void* data;
};

// A TVM tensor over caller memory: `cached` when it already is one over the same memory and shape (a camera loop's
// buffers), else a new one stored there.
const ffi::Tensor& Borrow(ffi::Tensor& cached, const void* data, const std::vector<int64_t>& shape, DLDataType dtype) {
  if (cached.defined() && cached.data_ptr() == data &&
      std::equal(shape.begin(), shape.end(), cached.shape().begin(), cached.shape().end())) {
    return cached;
  }
  cached = ffi::Tensor::FromNDAlloc(BorrowedAlloc{const_cast<void*>(data)}, ffi::ShapeView(shape.data(), shape.size()),
                                    dtype, DLDevice{kDLCPU, 0});
  return cached;
}

// Checks the inputs and makes the VM's arguments in ctx.args: each input in place when 64-byte aligned (TVM's
// compiled code assumes that alignment of every tensor it is given), else copied into the context's buffer.
void Arguments(const Model::Impl& m, Model::Context& ctx, const std::vector<TensorView>& inputs) {
  const std::vector<TensorInfo>& want = m.info.inputs;
  if (inputs.size() != want.size()) {
    throw Error("the model takes " + std::to_string(want.size()) + " input(s), got " + std::to_string(inputs.size()));
  }
  ctx.args.clear();
  ctx.borrowed.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorView& x = inputs[i];
    CheckInput(want[i], x.shape, x.dtype);
    if (x.data == nullptr) throw Error("input '" + want[i].name + "' has no data (null pointer)");
    ffi::Tensor& buffer = ctx.inputs[i];
    if (reinterpret_cast<uintptr_t>(x.data) % kViewAlign == 0) {
      ctx.args.emplace_back(Borrow(ctx.borrowed[i], x.data, x.shape, buffer.dtype()));
    } else {
      if (!std::equal(x.shape.begin(), x.shape.end(), buffer.shape().begin(), buffer.shape().end())) {
        buffer = NewViewableTensor(x.shape, x.dtype);  // a dynamic input at another size: made again
      }
      std::memcpy(buffer.data_ptr(), x.data, ffi::GetDataSize(*buffer.GetDLTensorPtr()));
      ctx.args.emplace_back(buffer);
    }
  }
}

// Calls f with ctx.args (then emptied, keeping their capacity); a TVM error becomes the model's one line.
ffi::Any Invoke(const ffi::Function& f, const Model::Impl& m, Model::Context& ctx) {
  ctx.arg_views.assign(ctx.args.begin(), ctx.args.end());
  ffi::Any rv;
  try {
    f.CallPacked(ctx.arg_views.data(), static_cast<int32_t>(ctx.arg_views.size()), &rv);
  } catch (const ffi::Error& e) {
    throw Error("model '" + m.path + "': run failed: " + FfiErrorLine(e));
  }
  ctx.arg_views.clear();
  ctx.args.clear();
  return rv;
}

// Runs main; its outputs are left in ctx.results, which the caller copies out and then clears (a result kept
// past the call would hold its block of TVM's pool, and the next call would take another).
void Call(const Model::Impl& m, Model::Context& ctx, const std::vector<TensorView>& inputs) {
  ctx.results.clear();
  Arguments(m, ctx, inputs);
  const ffi::Any rv = Invoke(ctx.main, m, ctx);
  try {
    CollectOutputs(rv, &ctx.results);
  } catch (const Error& e) {
    throw Error("model '" + m.path + "': " + e.what());
  }
}

// Clears the context's results on every exit of a run.
struct ResultsDone {
  Model::Context& ctx;
  ~ResultsDone() { ctx.results.clear(); }
};

// The model as its one ncnn region (Impl::direct): the region writes straight into the caller's outputs, made
// once at the metadata's shapes and refilled after that.
void CallDirect(const Model::Impl& m, Model::Context& ctx, const std::vector<TensorView>& inputs,
                std::vector<Tensor>* outputs) {
  Arguments(m, ctx, inputs);
  const std::vector<TensorInfo>& want = m.info.outputs;
  outputs->resize(want.size());
  ctx.borrowed_out.resize(want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    Tensor& y = (*outputs)[i];
    if (y.dtype != "float32" || y.shape != want[i].shape || y.bytes.size() != y.numel() * sizeof(float)) {
      y = Tensor(want[i].shape, "float32");
    }
    ctx.args.emplace_back(Borrow(ctx.borrowed_out[i], y.bytes.data(), y.shape, DLDataType{kDLFloat, 32, 1}));
  }
  Invoke(*m.direct, m, ctx);
}

std::string OutputName(const Model::Impl& m, size_t i) {
  return i < m.info.outputs.size() ? "output '" + m.info.outputs[i].name + "'" : "output " + std::to_string(i);
}

}  // namespace

std::unique_ptr<Model::Context> NewContext(const Model::Impl& m) {
  const std::string name = "model '" + m.path + "'";
  auto ctx = std::make_unique<Model::Context>();
  ffi::Optional<ffi::Function> load_exec = m.exec->GetFunction("vm_load_executable");
  if (!load_exec.has_value()) throw Error(name + " is not a Relax VM executable");
  ctx->vm = (*load_exec)().cast<ffi::Module>();
  // TVM's pooled allocator (one per process, locked) reuses freed blocks across runs instead of malloc/free.
  constexpr int kPooledAllocator = 2;
  ctx->vm->GetFunction("vm_initialization").value()(static_cast<int>(kDLCPU), 0, kPooledAllocator);
  ffi::Optional<ffi::Function> main = ctx->vm->GetFunction("main");
  if (!main.has_value()) throw Error(name + " has no 'main' function");
  ctx->main = *main;
  // The first ncnn region reads these in place when it can (zero_copy.h).
  for (const TensorInfo& in : m.info.inputs) {
    std::vector<int64_t> shape = in.shape;  // a dynamic input: its smallest size until a run gives another
    for (const DynamicDim& d : in.dynamic) shape[d.axis] = d.min;
    ctx->inputs.push_back(NewViewableTensor(shape, in.dtype));
  }
  return ctx;
}

std::vector<Tensor> Model::Run(const std::vector<Tensor>& inputs) {
  Impl& m = impl();
  const std::vector<TensorInfo>& want = m.info.inputs;
  std::vector<TensorView> views;
  views.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (inputs.size() == want.size()) {  // Arguments() says so otherwise
      CheckInput(want[i], x);
      const size_t nbytes = static_cast<size_t>(x.numel()) * DTypeSize(x.dtype);
      if (x.bytes.size() != nbytes) {
        throw Error("input '" + want[i].name + "' has " + std::to_string(x.bytes.size()) + " bytes, expected " +
                    std::to_string(nbytes));
      }
    }
    views.emplace_back(x);
  }
  // The caller owns its outputs: none of them aliases VM memory or an input buffer.
  std::vector<Tensor> outputs;
  Run(views, &outputs);
  return outputs;
}

void Model::Run(const std::vector<TensorView>& inputs, std::vector<Tensor>* outputs) {
  Impl& m = impl();
  if (outputs == nullptr) throw Error("Model::Run: outputs is null");
  Lease ctx(m);
  if (m.direct) return CallDirect(m, *ctx, inputs, outputs);
  const ResultsDone done{*ctx};
  Call(m, *ctx, inputs);
  const std::vector<ffi::Tensor>& results = (*ctx).results;
  if (outputs->size() != results.size()) outputs->resize(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    const ffi::Tensor& r = results[i];
    Tensor& y = (*outputs)[i];
    if (r.device().device_type != kDLCPU || !r.IsContiguous()) throw Error(OutputName(m, i) + " is not CPU memory");
    const std::string dtype = DTypeName(r.dtype());  // no allocation for a dtype tensor.h lists (ffi_util.h)
    const size_t nbytes = ffi::GetDataSize(*r.GetDLTensorPtr());
    // Reallocated once, then refilled: an empty Tensor{} (float32, shape []) looks like a scalar output but holds
    // no bytes, so its size is compared too.
    if (y.dtype != dtype || !std::equal(y.shape.begin(), y.shape.end(), r.shape().begin(), r.shape().end()) ||
        y.bytes.size() != nbytes) {
      y = Tensor(std::vector<int64_t>(r.shape().begin(), r.shape().end()), dtype);
    }
    if (nbytes) std::memcpy(y.bytes.data(), static_cast<const char*>(r.data_ptr()) + r.byte_offset(), nbytes);
  }
}

ProfileReport Model::Profile(const std::vector<Tensor>& inputs, int runs) {
  Impl& m = impl();
  std::vector<TensorView> views(inputs.begin(), inputs.end());
  // One context, hooked for the whole profile: other threads' calls run on other contexts, untimed.
  Lease ctx(m);
  try {
    const ResultsDone done{*ctx};
    ProfileReport report = ProfileVm((*ctx).vm, m.regions, runs, [&] { Call(m, *ctx, views); });
    report.threads = m.threads;
    report.thread_policy = m.thread_policy;
    return report;
  } catch (const ffi::Error& e) {
    throw Error("model '" + m.path + "': profile failed: " + FfiErrorLine(e));
  }
}

}  // namespace tvm_ncnn
