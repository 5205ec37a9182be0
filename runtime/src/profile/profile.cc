// Model::Profile: where a run's time goes, call by call.
//
// The wheel's libtvm_runtime is built without TVM's profiler (no vm_profiler_load_executable), but every Relax VM
// has an instrument hook: "set_instrument"(f) makes the VM call f(func, symbol, before_run, ret, args...) right
// before and right after each Call instruction -- an ncnn region (call_dps_packed), a TIR function, a VM builtin.
// A hook that reads the clock at both ends is the profile. A call made inside another (a nested VM function) is
// timed too, so each call keeps only its own time: a row never counts its callees again.
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "profile/profile.h"

namespace tvm_ncnn {
namespace {

namespace ffi = tvm::ffi;
using Clock = std::chrono::steady_clock;

// The global function set_instrument takes to remove a hook: the VM's set_instrument accepts a Function or the
// name of a global factory of one, and a null Function means "no hook" -- which cannot be passed directly
// (a null argument is read as a name).
constexpr const char* kNoHookFactory = "tvm_ncnn.profile_no_hook";

struct CallStats {
  std::string name;
  int64_t calls = 0;
  int64_t self_ns = 0;  // time inside the call, less the time of calls it made
};

// What the hook records. Calls are keyed by the symbol's address: the VM passes its function table's own
// string, the same for every call of one function, so the hot path compares pointers, not text.
class CallTimer {
 public:
  void OnCall(const ffi::PackedArgs& args) {
    if (args.size() < 3) return;
    const bool before = args[2].cast<bool>();
    const Clock::time_point now = Clock::now();
    if (before) {
      stack_.push_back({Find(args[1]), now, 0});
      return;
    }
    if (stack_.empty()) return;  // unbalanced: a call that started before the hook was put on
    const Frame f = stack_.back();
    stack_.pop_back();
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - f.start).count();
    CallStats& s = stats_[f.index];
    s.calls += 1;
    s.self_ns += ns - f.child_ns;
    if (!stack_.empty()) stack_.back().child_ns += ns;
  }

  // Forget everything (after the warm-up run); also drops frames a failed call left open.
  void Reset() {
    for (CallStats& s : stats_) s.calls = s.self_ns = 0;
    stack_.clear();
  }
  void DropOpenFrames() { stack_.clear(); }

  const std::vector<CallStats>& stats() const { return stats_; }

 private:
  struct Frame {
    size_t index;
    Clock::time_point start;
    int64_t child_ns;
  };

  size_t Find(const ffi::AnyView& symbol) {
    const std::optional<const char*> raw = symbol.try_cast<const char*>();
    if (raw.has_value()) {
      auto it = by_address_.find(*raw);
      if (it != by_address_.end()) return it->second;
      const size_t i = ByName(*raw);
      by_address_.emplace(*raw, i);
      return i;
    }
    return ByName(symbol.cast<std::string>());  // a VM that passes an owned string: slower, still right
  }

  size_t ByName(const std::string& name) {
    auto it = by_name_.find(name);
    if (it != by_name_.end()) return it->second;
    stats_.push_back({name, 0, 0});
    by_name_.emplace(name, stats_.size() - 1);
    return stats_.size() - 1;
  }

  std::vector<CallStats> stats_;
  std::vector<Frame> stack_;
  std::unordered_map<const char*, size_t> by_address_;
  std::unordered_map<std::string, size_t> by_name_;
};

// Layers in an ncnn graph: the second line of its .param text is "<layer count> <blob count>". -1 if unreadable.
int ParamLayerCount(const std::string& param) {
  const size_t nl = param.find('\n');
  if (nl == std::string::npos) return -1;
  char* end = nullptr;
  const long n = std::strtol(param.c_str() + nl + 1, &end, 10);
  return end == param.c_str() + nl + 1 || n < 0 ? -1 : static_cast<int>(n);
}

// The region module that answers to `name`, if any (an ncnn module's only named function is its symbol, plus
// tvm_ncnn.configure, which the VM never calls).
const ffi::Module* RegionOf(const std::string& name, const std::vector<ffi::Module>& regions) {
  for (const ffi::Module& r : regions) {
    if (r->GetFunction(ffi::String(name)).has_value()) return &r;
  }
  return nullptr;
}

ProfileRow MakeRow(const CallStats& s, const std::vector<ffi::Module>& regions, int runs) {
  ProfileRow row;
  row.name = s.name;
  row.calls = static_cast<double>(s.calls) / runs;
  row.ms = static_cast<double>(s.self_ns) / 1e6 / runs;
  if (const ffi::Module* region = RegionOf(s.name, regions)) {
    row.kind = "ncnn region";
    row.ncnn_layers = ParamLayerCount(std::string((*region)->InspectSource(ffi::String("param"))));
  } else if (s.name.rfind("vm.builtin.", 0) == 0) {
    row.kind = "vm";
  } else {
    row.kind = "tvm";
  }
  return row;
}

// Removes the hook when the profile ends, however it ends.
class HookGuard {
 public:
  HookGuard(const ffi::Function& set_instrument, ffi::Function hook) : set_(set_instrument) { set_(hook); }
  ~HookGuard() {
    try {
      set_(ffi::String(kNoHookFactory));
    } catch (...) {  // nothing better to do in a destructor; the hook only slows later runs
    }
  }

 private:
  ffi::Function set_;
};

}  // namespace

ProfileReport ProfileVm(const ffi::Module& vm, const std::vector<ffi::Module>& regions, int runs,
                        const std::function<void()>& run_once) {
  if (runs < 1 || runs > kMaxProfileRuns) {
    throw Error("profile: runs must be from 1 to " + std::to_string(kMaxProfileRuns) + ", got " +
                std::to_string(runs));
  }
  const ffi::Optional<ffi::Function> set_instrument = vm->GetFunction("set_instrument");
  if (!set_instrument.has_value()) throw Error("profile: this TVM runtime's Relax VM has no instrument hook");

  auto timer = std::make_shared<CallTimer>();
  ffi::Function hook([timer](ffi::PackedArgs args, ffi::Any*) { timer->OnCall(args); });
  HookGuard guard(*set_instrument, hook);

  run_once();  // the first run allocates (VM pool, ncnn blobs): not what a steady run costs
  timer->Reset();
  int64_t wall_ns = 0;
  for (int i = 0; i < runs; ++i) {
    timer->DropOpenFrames();
    const Clock::time_point t0 = Clock::now();
    run_once();
    wall_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
  }

  ProfileReport report;
  report.runs = runs;
  report.run_ms = static_cast<double>(wall_ns) / 1e6 / runs;
  double in_calls_ms = 0;
  for (const CallStats& s : timer->stats()) {
    if (s.calls == 0) continue;
    report.rows.push_back(MakeRow(s, regions, runs));
    in_calls_ms += report.rows.back().ms;
  }
  ProfileRow rest;
  rest.name = "(outside calls: VM dispatch, input/output copies)";
  rest.kind = "other";
  rest.calls = 1;
  rest.ms = std::max(0.0, report.run_ms - in_calls_ms);
  report.rows.push_back(rest);
  for (ProfileRow& row : report.rows) row.share = report.run_ms > 0 ? row.ms / report.run_ms : 0;
  std::stable_sort(report.rows.begin(), report.rows.end(),
                   [](const ProfileRow& a, const ProfileRow& b) { return a.ms > b.ms; });
  return report;
}

double ProfileReport::KindShare(const std::string& kind) const {
  double share = 0;
  for (const ProfileRow& row : rows) {
    if (row.kind == kind) share += row.share;
  }
  return share;
}

}  // namespace tvm_ncnn

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def(tvm_ncnn::kNoHookFactory, []() { return tvm::ffi::Function(); });
}
