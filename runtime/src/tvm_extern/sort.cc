// tvm.contrib.sort.{sort,argsort,topk}: the global functions TVM's lowering of sort, argsort and top-k calls
// from compiled code. topi/sort.py makes each op a te.extern whose body is call_packed("tvm.contrib.sort.<name>",
// ...), which the TIR in model.so looks up by name in the global registry on its first run. The TVM wheels carry
// these only in libtvm_runtime_extra.so, which neither deploy_app nor the aarch64 bundle loads, so without this file
// a model.so with a top-k loads and then fails. Written here from the calling convention topi/sort.py sets up:
//
//   sort(data, out, axis, is_ascend)                      out: data sorted along axis
//   argsort(data, out, axis, is_ascend)                   out: the indices that sort data along axis
//   topk(data, out[, out2], k, axis, ret_type, is_ascend)  ret_type "both": values then indices, "values",
//                                                         "indices"; the outputs hold k entries along axis
//                                                         (k < 1: all of them)
//
// Ties keep their input order, ascending and descending alike (ONNX TopK: the lower index first; numpy's stable
// argsort; TVM's own implementation). NaN sorts after every number ascending and before every number descending
// (largest first, as onnxruntime's TopK and torch.sort treat it), which also keeps the order a strict weak one.
//
// `import tvm` loads TVM's copies (libtvm_runtime_extra.so) into a Python process, and registering a global name
// twice aborts the process. So these register only where the name is free, and the SDK loads TVM's library
// before this one whenever TVM is installed (tvm_ncnn/runtime/native.py), so that whichever comes second finds the name taken.
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;

// A tensor as the sort functions see it: compact, on the CPU, and cut at `axis` into outer x n x inner.
struct View {
  char* data;
  DLDataType dtype;
  int64_t outer = 1, n = 1, inner = 1;
  size_t elem = 0;  // bytes per element
};

[[noreturn]] void Fail(const std::string& fn, const std::string& what) {
  // One line, no backtrace: it reaches deploy_app's error line through the VM.
  throw ffi::Error("ValueError", "tvm.contrib.sort." + fn + ": " + what, "");
}

View MakeView(const DLTensor* t, int64_t axis, const std::string& fn, const char* name) {
  if (t->device.device_type != kDLCPU) Fail(fn, std::string(name) + " is not on the CPU");
  if (t->dtype.lanes != 1 || t->dtype.bits % 8 != 0) Fail(fn, std::string(name) + " has a vector or sub-byte dtype");
  // TVM hands over compact buffers (decl_buffer with no strides); a strided view would need its own walk.
  if (t->strides != nullptr) {
    int64_t expected = 1;
    for (int d = t->ndim - 1; d >= 0; --d) {
      if (t->shape[d] != 1 && t->strides[d] != expected) Fail(fn, std::string(name) + " is not compact");
      expected *= t->shape[d];
    }
  }
  View v{static_cast<char*>(t->data) + t->byte_offset, t->dtype};
  v.elem = t->dtype.bits / 8;
  for (int d = 0; d < t->ndim; ++d) {
    if (d < axis) v.outer *= t->shape[d];
    else if (d == axis) v.n = t->shape[d];
    else v.inner *= t->shape[d];
  }
  return v;
}

int64_t NormalizeAxis(const DLTensor* data, int64_t axis, const std::string& fn) {
  const int64_t rank = std::max<int64_t>(data->ndim, 1);
  if (axis < -rank || axis >= rank) Fail(fn, "axis " + std::to_string(axis) + " is out of range for rank " +
                                             std::to_string(data->ndim));
  return axis < 0 ? axis + rank : axis;
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float f = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -f : f;
  }
  uint32_t bits = exponent == 31 ? (sign | 0x7f800000u | (mantissa << 13))  // inf / NaN
                                 : (sign | ((exponent + 112) << 23) | (mantissa << 13));
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Compare by key (NaN as the largest), then by index: a total order, so an unstable std::sort or partial_sort
// gives what a stable sort of the keys alone would.
template <typename K>
struct Before {
  const std::vector<K>& keys;
  bool ascend;
  bool operator()(int64_t a, int64_t b) const {
    const K x = keys[a], y = keys[b];
    if constexpr (std::is_floating_point_v<K>) {
      const bool nx = std::isnan(x), ny = std::isnan(y);
      if (nx != ny) return ascend ? ny : nx;
      if (nx) return a < b;
    }
    if (x != y) return ascend ? x < y : x > y;
    return a < b;
  }
};

// The positions of row (o, i) in sorted order, only the first k of them ordered. Keys are loaded as K.
template <typename K, typename Load>
void OrderRow(const View& v, int64_t o, int64_t i, int64_t k, bool ascend, Load load, std::vector<K>& keys,
              std::vector<int64_t>& order) {
  keys.resize(v.n);
  for (int64_t j = 0; j < v.n; ++j) keys[j] = load(v.data + ((o * v.n + j) * v.inner + i) * v.elem);
  order.resize(v.n);
  std::iota(order.begin(), order.end(), int64_t{0});
  Before<K> before{keys, ascend};
  if (k < v.n) std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
  else std::sort(order.begin(), order.end(), before);
}

void StoreIndex(const View& out, char* p, int64_t index, const std::string& fn) {
  const DLDataType t = out.dtype;
  if (t.code == kDLInt && t.bits == 64) *reinterpret_cast<int64_t*>(p) = index;
  else if (t.code == kDLInt && t.bits == 32) *reinterpret_cast<int32_t*>(p) = static_cast<int32_t>(index);
  else if (t.code == kDLFloat && t.bits == 32) *reinterpret_cast<float*>(p) = static_cast<float>(index);
  else if (t.code == kDLFloat && t.bits == 64) *reinterpret_cast<double*>(p) = static_cast<double>(index);
  else Fail(fn, "indices of dtype code " + std::to_string(t.code) + " bits " + std::to_string(t.bits));
}

// Everything the three functions share: for each row along the axis, order it and write the first k entries
// (values copied byte for byte from data, so every dtype round-trips exactly; indices converted).
struct Job {
  std::string fn;
  const DLTensor* data;
  int64_t axis = 0, k = 0;
  bool ascend = true;
  const DLTensor* values = nullptr;
  const DLTensor* indices = nullptr;
};

template <typename K, typename Load>
void RunTyped(const Job& job, Load load) {
  const View in = MakeView(job.data, job.axis, job.fn, "data");
  const int64_t k = job.k;
  View vals{}, idx{};
  if (job.values) vals = MakeView(job.values, job.axis, job.fn, "values output");
  if (job.indices) idx = MakeView(job.indices, job.axis, job.fn, "indices output");
  for (const View* out : {job.values ? &vals : nullptr, job.indices ? &idx : nullptr}) {
    if (out && (out->outer != in.outer || out->inner != in.inner || out->n != k)) {
      Fail(job.fn, "an output's shape does not match the data with " + std::to_string(k) + " entries along axis " +
                       std::to_string(job.axis));
    }
  }
  if (job.values && (vals.dtype.code != in.dtype.code || vals.dtype.bits != in.dtype.bits)) {
    Fail(job.fn, "the values output has another dtype than the data");
  }
  std::vector<K> keys;
  std::vector<int64_t> order;
  for (int64_t o = 0; o < in.outer; ++o) {
    for (int64_t i = 0; i < in.inner; ++i) {
      OrderRow<K>(in, o, i, k, job.ascend, load, keys, order);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t at = (o * k + j) * in.inner + i;
        if (job.values) {
          std::memcpy(vals.data + at * vals.elem, in.data + ((o * in.n + order[j]) * in.inner + i) * in.elem, in.elem);
        }
        if (job.indices) StoreIndex(idx, idx.data + at * idx.elem, order[j], job.fn);
      }
    }
  }
}

template <typename T>
T LoadAs(const char* p) {
  T x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

void Run(const Job& job) {
  const DLDataType t = job.data->dtype;
  if (t.code == kDLFloat && t.bits == 32) return RunTyped<float>(job, LoadAs<float>);
  if (t.code == kDLFloat && t.bits == 64) return RunTyped<double>(job, LoadAs<double>);
  if (t.code == kDLFloat && t.bits == 16) {
    return RunTyped<float>(job, [](const char* p) { return HalfToFloat(LoadAs<uint16_t>(p)); });
  }
  if (t.code == kDLBfloat && t.bits == 16) {
    return RunTyped<float>(job, [](const char* p) {
      const uint32_t bits = static_cast<uint32_t>(LoadAs<uint16_t>(p)) << 16;
      return LoadAs<float>(reinterpret_cast<const char*>(&bits));
    });
  }
  if (t.code == kDLInt && t.bits == 8) return RunTyped<int8_t>(job, LoadAs<int8_t>);
  if (t.code == kDLInt && t.bits == 16) return RunTyped<int16_t>(job, LoadAs<int16_t>);
  if (t.code == kDLInt && t.bits == 32) return RunTyped<int32_t>(job, LoadAs<int32_t>);
  if (t.code == kDLInt && t.bits == 64) return RunTyped<int64_t>(job, LoadAs<int64_t>);
  if (t.code == kDLUInt && t.bits == 8) return RunTyped<uint8_t>(job, LoadAs<uint8_t>);
  if (t.code == kDLUInt && t.bits == 16) return RunTyped<uint16_t>(job, LoadAs<uint16_t>);
  if (t.code == kDLUInt && t.bits == 32) return RunTyped<uint32_t>(job, LoadAs<uint32_t>);
  if (t.code == kDLUInt && t.bits == 64) return RunTyped<uint64_t>(job, LoadAs<uint64_t>);
  if (t.code == kDLBool) return RunTyped<uint8_t>(job, LoadAs<uint8_t>);
  Fail(job.fn, "data of dtype code " + std::to_string(t.code) + " bits " + std::to_string(t.bits));
}

// Arguments as compiled TIR passes them: tensors as DLTensor*, axis/k as integers, is_ascend as a bool or an
// integer (topi's default is the literal 1), ret_type as a string.
const DLTensor* TensorArg(ffi::PackedArgs args, int i, const std::string& fn) {
  if (i >= args.size()) Fail(fn, "expects a tensor as argument " + std::to_string(i));
  auto t = args[i].try_cast<DLTensor*>();
  if (!t.has_value()) Fail(fn, "argument " + std::to_string(i) + " is a " + args[i].GetTypeKey() + ", not a tensor");
  return *t;
}

int64_t IntArg(ffi::PackedArgs args, int i, const std::string& fn) {
  if (i >= args.size()) Fail(fn, "expects an integer as argument " + std::to_string(i));
  if (auto v = args[i].try_cast<int64_t>(); v.has_value()) return *v;
  if (auto b = args[i].try_cast<bool>(); b.has_value()) return *b ? 1 : 0;
  Fail(fn, "argument " + std::to_string(i) + " is a " + args[i].GetTypeKey() + ", not an integer");
}

void ExpectArgs(ffi::PackedArgs args, int n, const std::string& fn) {
  if (args.size() != n) Fail(fn, "takes " + std::to_string(n) + " arguments, got " + std::to_string(args.size()));
}

// sort and argsort: (data, out, axis, is_ascend)
void SortLike(ffi::PackedArgs args, bool want_indices) {
  const std::string fn = want_indices ? "argsort" : "sort";
  ExpectArgs(args, 4, fn);
  Job job{fn, TensorArg(args, 0, fn)};
  job.axis = NormalizeAxis(job.data, IntArg(args, 2, fn), fn);
  job.k = job.data->ndim == 0 ? 1 : job.data->shape[job.axis];
  job.ascend = IntArg(args, 3, fn) != 0;
  (want_indices ? job.indices : job.values) = TensorArg(args, 1, fn);
  Run(job);
}

// topk: (data, out[, out2], k, axis, ret_type, is_ascend)
void TopK(ffi::PackedArgs args) {
  const std::string fn = "topk";
  if (args.size() != 6 && args.size() != 7) Fail(fn, "takes 6 or 7 arguments, got " + std::to_string(args.size()));
  const int outputs = args.size() - 5;
  Job job{fn, TensorArg(args, 0, fn)};
  job.axis = NormalizeAxis(job.data, IntArg(args, outputs + 2, fn), fn);
  const int64_t n = job.data->ndim == 0 ? 1 : job.data->shape[job.axis];
  const int64_t k = IntArg(args, outputs + 1, fn);
  job.k = k < 1 ? n : std::min(k, n);
  auto ret_type = args[outputs + 3].try_cast<ffi::String>();
  if (!ret_type.has_value()) Fail(fn, "ret_type is not a string");
  job.ascend = IntArg(args, outputs + 4, fn) != 0;
  const std::string kind(*ret_type);
  if (kind == "both" && outputs == 2) {
    job.values = TensorArg(args, 1, fn);
    job.indices = TensorArg(args, 2, fn);
  } else if (kind == "values" && outputs == 1) {
    job.values = TensorArg(args, 1, fn);
  } else if (kind == "indices" && outputs == 1) {
    job.indices = TensorArg(args, 1, fn);
  } else {
    Fail(fn, "ret_type '" + kind + "' with " + std::to_string(outputs) + " outputs");
  }
  Run(job);
}

void RegisterIfFree(const char* name, ffi::Function f) {
  if (!ffi::Function::GetGlobal(name).has_value()) ffi::Function::SetGlobal(name, std::move(f));
}

}  // namespace
}  // namespace tvm_ncnn

TVM_FFI_STATIC_INIT_BLOCK() {
  using tvm::ffi::Any;
  using tvm::ffi::Function;
  using tvm::ffi::PackedArgs;
  tvm_ncnn::RegisterIfFree("tvm.contrib.sort.sort",
                           Function::FromPacked([](PackedArgs a, Any*) { tvm_ncnn::SortLike(a, false); }));
  tvm_ncnn::RegisterIfFree("tvm.contrib.sort.argsort",
                           Function::FromPacked([](PackedArgs a, Any*) { tvm_ncnn::SortLike(a, true); }));
  tvm_ncnn::RegisterIfFree("tvm.contrib.sort.topk",
                           Function::FromPacked([](PackedArgs a, Any*) { tvm_ncnn::TopK(a); }));
}
