// Model: load model.so (a Relax VM executable), read and check its metadata, configure its ncnn regions,
// build the VM, and run it with inputs preallocated once.
#include <cstdlib>  // first: defines __GLIBC__
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <cstring>
#include <mutex>
#include <unordered_set>

#include "ffi_util.h"
#include "format/seal.h"
#include "format/signature.h"
#include "internal.h"
#include "io/zero_copy.h"
#include "meta/metadata.h"
#include "profile/profile.h"
#include "threads/tvm_on_openmp.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

namespace ffi = tvm::ffi;

namespace {

// Every ncnn module in the import tree (model.so's library module imports one per offloaded region).
void CollectNcnnModules(const ffi::Module& mod, std::unordered_set<const void*>* seen,
                        std::vector<ffi::Module>* out) {
  if (!seen->insert(mod.get()).second) return;
  if (std::string(mod->kind()) == "ncnn") out->push_back(mod);
  for (const ffi::Any& child : mod->imports()) {
    if (auto m = child.as<ffi::Module>()) CollectNcnnModules(*m, seen, out);
  }
}

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

}  // namespace

void CheckThreads(int64_t threads) {
  if (threads < 0 || threads > kMaxThreads) {
    throw Error("threads must be between 1 and " + std::to_string(kMaxThreads) + " (or 0 to detect), got " +
                std::to_string(threads));
  }
}

struct Model::Impl {
  std::string path;
  std::string signer;  // fingerprint of the trusted key that verified the file ("" when none was given)
  ModelInfo info;
  int threads = 1;
  std::string thread_policy;  // threads/tvm_on_openmp.h ThreadPolicy
  RunPrecision precision;
  // Members die in reverse order: main and the VM before the loaded library their code lives in.
  ffi::Module exec{ffi::UnsafeInit()};
  ffi::Module vm{ffi::UnsafeInit()};
  std::vector<ffi::Module> regions;  // the ncnn modules (owned by exec too): Profile names their calls
  ffi::Function main;
  std::vector<ffi::Tensor> inputs;  // allocated once, refilled by every Run
  std::mutex mu;
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const ModelInfo& Model::info() const { return impl_->info; }
int Model::threads() const { return impl_->threads; }
const std::string& Model::precision() const { return impl_->precision.name; }
bool Model::fp16() const { return impl_->precision.fp16; }
const std::string& Model::signer() const { return impl_->signer; }
const std::string& Model::thread_policy() const { return impl_->thread_policy; }

Model Model::Load(const std::string& path, const Options& options) {
  const std::string name = "model '" + path + "'";
  CheckThreads(options.threads);
  const int64_t file_size = CheckReadableFile(path, "model");
  // Before dlopen: the signature (when a trusted key is given, README "Trust"), then the seal on what it covers.
  const SignatureCheck signature = CheckSignature(path, file_size, options.trust);
  // TVM checks not its code
  const bool sealed = VerifySeal(path, signature.content_size, CheckElf(path, signature.content_size));

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->signer = signature.signer;
  impl->threads = options.threads == 0 ? DetectThreads() : options.threads;

  // dlopen wants a path with a slash (else it searches the library path): make it absolute.
  char* resolved = realpath(path.c_str(), nullptr);
  if (resolved == nullptr) throw Error(name + ": cannot resolve the path");
  const std::string abs_path(resolved);
  std::free(resolved);
  // Every byte was just checked: the regions' weights, read in place from the mapping, need no second pass.
  if (sealed) NoteSealVerified(abs_path);

  try {
    // The ".so" loader directly: Module::LoadFromFile would pick a loader by the file's extension, and the
    // ELF check above already established what the file is, whatever it is called.
    const ffi::Optional<ffi::Function> load_so = ffi::Function::GetGlobal("ffi.Module.load_from_file.so");
    impl->exec = load_so.has_value() ? (*load_so)(abs_path, "so").cast<ffi::Module>()
                                     : ffi::Module::LoadFromFile(abs_path);
  } catch (const ffi::Error& e) {
    const std::string json = FindMetadataInFile(abs_path);
    if (!json.empty()) {
      std::string mismatch;
      try {
        mismatch = VersionMismatch(ParseMetadata(json, name));
      } catch (const Error&) {
      }
      if (!mismatch.empty()) throw Error(name + mismatch + " (loading failed: " + FfiErrorLine(e) + ")");
    }
    throw Error(name + ": cannot load: " + FfiErrorLine(e));
  }

  ReleaseLibraryBlobPages(abs_path);
  impl->thread_policy = ThreadPolicy(RunTvmLoopsOnOpenMP(abs_path, impl->threads));

  try {
    ffi::Optional<ffi::Function> meta = impl->exec->GetFunction("tvm_ncnn.metadata", true);
    if (!meta.has_value()) throw Error(name + " is not a tvm-ncnn model (it has no tvm_ncnn metadata)");
    const std::string json((*meta)().cast<ffi::String>());
    impl->info = ParseMetadata(json, name + ": metadata");
  } catch (const ffi::Error& e) {
    throw Error(name + ": cannot read metadata: " + FfiErrorLine(e));
  }
  const ModelInfo& info = impl->info;
  const std::string mismatch = VersionMismatch(info);
  if (!mismatch.empty()) throw Error(name + mismatch);
  if (info.inputs.empty()) throw Error(name + ": metadata lists no inputs");
  try {
    impl->precision = ResolvePrecision(info.precision, options);
  } catch (const Error& e) {
    throw Error(name + ": " + e.what());
  }

  try {
    // Configure every region before anything runs: the net is built on the first configure (or call),
    // and fp16 cannot change afterwards.
    std::unordered_set<const void*> seen;
    std::vector<ffi::Module>& regions = impl->regions;
    CollectNcnnModules(impl->exec, &seen, &regions);
    if (static_cast<int>(regions.size()) != info.ncnn_regions) {
      throw Error(name + ": metadata says " + std::to_string(info.ncnn_regions) + " ncnn regions, the file holds " +
                  std::to_string(regions.size()));
    }
    for (ffi::Module& region : regions) {
      ffi::Optional<ffi::Function> configure = region->GetFunction("tvm_ncnn.configure");
      if (!configure.has_value()) throw Error(name + ": an ncnn region has no tvm_ncnn.configure function");
      (*configure)(impl->threads, impl->precision.fp16);
    }

    ffi::Optional<ffi::Function> load_exec = impl->exec->GetFunction("vm_load_executable");
    if (!load_exec.has_value()) throw Error(name + " is not a Relax VM executable");
    impl->vm = (*load_exec)().cast<ffi::Module>();
    constexpr int kPooledAllocator = 2;  // reuses freed blocks across runs instead of malloc/free each time
    impl->vm->GetFunction("vm_initialization").value()(static_cast<int>(kDLCPU), 0, kPooledAllocator);
    ffi::Optional<ffi::Function> main = impl->vm->GetFunction("main");
    if (!main.has_value()) throw Error(name + " has no 'main' function");
    impl->main = *main;
  } catch (const ffi::Error& e) {
    throw Error(name + ": cannot initialize: " + FfiErrorLine(e));
  }

  // The first ncnn region reads these in place when it can (zero_copy.h).
  for (const TensorInfo& in : info.inputs) impl->inputs.push_back(NewViewableTensor(in.shape, in.dtype));
#ifdef __GLIBC__
  // Loading freed large buffers (module bytes, ncnn's unpacked weights) in the middle of the heap; glibc keeps
  // such free pages resident. Hand them back once, now that the long-lived allocations are made.
  malloc_trim(0);
#endif
  return Model(std::move(impl));
}

std::vector<Tensor> Model::Run(const std::vector<Tensor>& inputs) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return RunLocked(*impl_, inputs);
}

ProfileReport Model::Profile(const std::vector<Tensor>& inputs, int runs) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& m = *impl_;
  try {
    ProfileReport report = ProfileVm(m.vm, m.regions, runs, [&] { RunLocked(m, inputs); });
    report.threads = m.threads;
    report.thread_policy = m.thread_policy;
    return report;
  } catch (const ffi::Error& e) {
    throw Error("model '" + m.path + "': profile failed: " + FfiErrorLine(e));
  }
}

std::vector<Tensor> Model::RunLocked(Impl& m, const std::vector<Tensor>& inputs) {
  const std::vector<TensorInfo>& want = m.info.inputs;
  if (inputs.size() != want.size()) {
    throw Error("the model takes " + std::to_string(want.size()) + " input(s), got " + std::to_string(inputs.size()));
  }
  std::vector<ffi::AnyView> args;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    CheckInput(want[i], x);
    const size_t nbytes = ffi::GetDataSize(*m.inputs[i].GetDLTensorPtr());
    if (x.bytes.size() != nbytes) {
      throw Error("input '" + want[i].name + "' has " + std::to_string(x.bytes.size()) + " bytes, expected " +
                  std::to_string(nbytes));
    }
    std::memcpy(m.inputs[i].data_ptr(), x.bytes.data(), nbytes);
    args.emplace_back(m.inputs[i]);
  }

  std::vector<ffi::Tensor> results;
  try {
    ffi::Any rv;
    m.main.CallPacked(args.data(), static_cast<int32_t>(args.size()), &rv);
    CollectOutputs(rv, &results);
  } catch (const ffi::Error& e) {
    throw Error("model '" + m.path + "': run failed: " + FfiErrorLine(e));
  } catch (const Error& e) {
    throw Error("model '" + m.path + "': " + e.what());
  }
  // Copy out: the caller owns its outputs, and none of them may alias VM memory or our input buffers.
  std::vector<Tensor> outputs;
  for (size_t i = 0; i < results.size(); ++i) {
    const std::string what = i < m.info.outputs.size() ? "output '" + m.info.outputs[i].name + "'"
                                                        : "output " + std::to_string(i);
    outputs.push_back(FromFfiTensor(results[i], what));
  }
  return outputs;
}

}  // namespace tvm_ncnn
