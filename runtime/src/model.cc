// Model: load model.so (a Relax VM executable), read and check its metadata, configure its ncnn regions, and
// run it on execution contexts (a VM instance + preallocated inputs each) drawn from a pool, so that calls from
// several threads run in parallel over one copy of the weights (runtime.h, "Concurrency"). Running is in
// model_run.cc.
#include <cstdlib>  // first: defines __GLIBC__
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "ffi_util.h"
#include "format/seal.h"
#include "format/signature.h"
#include "internal.h"
#include "meta/metadata.h"
#include "model_impl.h"
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

// The function of the region metadata names as the whole model (FORMAT.md `direct_region`). Its outputs must be
// the model's, float32 and static: the runtime sizes the caller's output tensors from the metadata.
ffi::Function DirectRegion(const Model::Impl& m, const std::string& name) {
  const std::string& symbol = m.info.direct_region;
  for (const TensorInfo& out : m.info.outputs) {
    if (out.dtype != "float32" || std::any_of(out.shape.begin(), out.shape.end(), [](int64_t d) { return d < 0; })) {
      throw Error(name + ": metadata direct_region '" + symbol + "' needs static float32 outputs, output '" +
                  out.name + "' is " + ShapeString(out.shape) + " " + out.dtype);
    }
  }
  for (const ffi::Module& region : m.regions) {
    if (ffi::Optional<ffi::Function> f = region->GetFunction(symbol)) return *f;
  }
  throw Error(name + ": metadata direct_region '" + symbol + "' is not one of its ncnn regions");
}

}  // namespace

void CheckThreads(int64_t threads) {
  if (threads < 0 || threads > kMaxThreads) {
    throw Error("threads must be between 1 and " + std::to_string(kMaxThreads) + " (or 0 to detect), got " +
                std::to_string(threads));
  }
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model() noexcept = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model::Impl& Model::impl() const {
  if (impl_ == nullptr) {
    throw Error("tvm_ncnn::Model is empty (default-constructed or moved from): assign Model::Load(path) first");
  }
  return *impl_;
}

const ModelInfo& Model::info() const { return impl().info; }
int Model::threads() const { return impl().threads; }
const std::string& Model::precision() const { return impl().precision.name; }
bool Model::fp16() const { return impl().precision.fp16; }
const std::string& Model::signer() const { return impl().signer; }
int Model::contexts() const {
  Impl& m = impl();
  std::lock_guard<std::mutex> lock(m.mu);
  return m.created;
}
const std::string& Model::thread_policy() const { return impl().thread_policy; }

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

    if (!info.direct_region.empty()) impl->direct = DirectRegion(*impl, name);
    // The first context now: a model that cannot make one fails at load, not at its first run.
    impl->idle.push_back(NewContext(*impl));
    impl->created = 1;
  } catch (const ffi::Error& e) {
    throw Error(name + ": cannot initialize: " + FfiErrorLine(e));
  }

#ifdef __GLIBC__
  // Loading freed large buffers (module bytes, ncnn's unpacked weights) in the middle of the heap; glibc keeps
  // such free pages resident. Hand them back once, now that the long-lived allocations are made.
  malloc_trim(0);
#endif
  return Model(std::move(impl));
}

}  // namespace tvm_ncnn
