// Model: load model.so (a Relax VM executable), read and check its metadata, configure its ncnn regions,
// build the VM, and run it with inputs preallocated once.
#include <dlfcn.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <mutex>
#include <unordered_set>

#include "ffi_util.h"
#include "internal.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

namespace ffi = tvm::ffi;

namespace {

constexpr int64_t kMetadataFormatVersion = 1;
constexpr int kMaxThreads = 256;

// ---- ELF check: a clear message for a non-library or a library built for another CPU, before dlopen.

const char* MachineName(int machine) {
  switch (machine) {
    case 3: return "x86";
    case 40: return "arm";
    case 62: return "x86_64";
    case 183: return "aarch64";
    case 243: return "riscv";
    default: return nullptr;
  }
}

int HostMachine() {
#if defined(__x86_64__)
  return 62;
#elif defined(__aarch64__)
  return 183;
#elif defined(__arm__)
  return 40;
#elif defined(__i386__)
  return 3;
#elif defined(__riscv)
  return 243;
#else
  return -1;
#endif
}

uint64_t ReadLE(const std::string& b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

}  // namespace

// Also checks that the file holds every loadable segment: dlopen maps a truncated file without complaint and
// the process then dies of SIGBUS on first touch. Returns where the ELF image ends (what follows is the seal).
// for_this_machine: also refuse a library built for another CPU (off when sealing a cross-compiled export).
int64_t CheckElf(const std::string& path, int64_t file_size, bool for_this_machine) {
  const std::string name = "model '" + path + "': ";
  std::ifstream f(path, std::ios::binary);
  std::string h(64, '\0');
  f.read(&h[0], 64);
  if (f.gcount() < 52 || h.compare(0, 4, "\x7f" "ELF") != 0) {
    throw Error(name + "not a model.so (not an ELF shared library)");
  }
  const bool is64 = h[4] == 2;
  if (h[5] != 1) throw Error(name + "not a little-endian ELF file");
  if (ReadLE(h, 16, 2) != 3) throw Error(name + "not a model.so (an ELF file, but not a shared library)");
  const int machine = static_cast<int>(ReadLE(h, 18, 2)), host = HostMachine();
  if (for_this_machine && host >= 0 && machine != host) {
    const char* m = MachineName(machine);
    throw Error(name + "built for " + (m ? m : "ELF machine " + std::to_string(machine)) + ", but this machine is " +
                MachineName(host) + "; export it for this target");
  }
  const uint64_t phoff = is64 ? ReadLE(h, 32, 8) : ReadLE(h, 28, 4);
  const uint64_t phentsize = ReadLE(h, is64 ? 54 : 42, 2), phnum = ReadLE(h, is64 ? 56 : 44, 2);
  const uint64_t size = static_cast<uint64_t>(file_size);
  uint64_t need = phoff + phentsize * phnum;
  if (phentsize < (is64 ? 56u : 32u) || need > size) {
    throw Error(name + "truncated or corrupt (its ELF program headers lie outside the file)");
  }
  std::string ph(phentsize * phnum, '\0');
  f.seekg(static_cast<std::streamoff>(phoff));
  f.read(&ph[0], static_cast<std::streamsize>(ph.size()));
  for (uint64_t i = 0; i < phnum; ++i) {
    const size_t at = i * phentsize;
    if (ReadLE(ph, at, 4) != 1) continue;  // PT_LOAD only
    const uint64_t offset = is64 ? ReadLE(ph, at + 8, 8) : ReadLE(ph, at + 4, 4);
    const uint64_t filesz = is64 ? ReadLE(ph, at + 32, 8) : ReadLE(ph, at + 16, 4);
    if (offset + filesz > need) need = offset + filesz;
  }
  // The section header table sits at the end of the file: a file cut anywhere fails this.
  const uint64_t shoff = is64 ? ReadLE(h, 40, 8) : ReadLE(h, 32, 4);
  const uint64_t shend = shoff + ReadLE(h, is64 ? 58 : 46, 2) * ReadLE(h, is64 ? 60 : 48, 2);
  if (shoff != 0 && shend > need) need = shend;
  if (need > size) {
    throw Error(name + "truncated: the file has " + std::to_string(size) + " bytes, its ELF headers describe " +
                std::to_string(need) + "; copy it again");
  }
  return static_cast<int64_t>(need);
}

namespace {

// ---- metadata JSON -> ModelInfo. Every problem names the model file and the field.

struct MetaReader {
  std::string where;  // "model 'x.so': metadata"

  [[noreturn]] void Bad(const std::string& what) const { throw Error(where + ": " + what); }

  ffi::Optional<ffi::Any> Find(const ffi::Map<ffi::Any, ffi::Any>& obj, const char* key) const {
    auto it = obj.find(ffi::String(key));
    if (it == obj.end()) return std::nullopt;
    return (*it).second;
  }
  ffi::Any Need(const ffi::Map<ffi::Any, ffi::Any>& obj, const char* key) const {
    auto v = Find(obj, key);
    if (!v.has_value()) Bad(std::string("field '") + key + "' is missing");
    return *v;
  }
  std::string Str(const ffi::Any& v, const std::string& field) const {
    auto s = v.as<ffi::String>();
    if (!s.has_value()) Bad("field '" + field + "' is not a string");
    return std::string(*s);
  }
  int64_t Int(const ffi::Any& v, const std::string& field) const {
    auto i = v.as<int64_t>();
    if (!i.has_value()) Bad("field '" + field + "' is not an integer");
    return *i;
  }
  double Number(const ffi::Any& v, const std::string& field) const {
    if (auto i = v.as<int64_t>()) return static_cast<double>(*i);
    if (auto d = v.as<double>()) return *d;
    Bad("field '" + field + "' is not a number");
  }
  ffi::Array<ffi::Any> List(const ffi::Any& v, const std::string& field) const {
    auto a = v.as<ffi::Array<ffi::Any>>();
    if (!a.has_value()) Bad("field '" + field + "' is not a list");
    return *a;
  }
  ffi::Map<ffi::Any, ffi::Any> Obj(const ffi::Any& v, const std::string& field) const {
    auto m = v.as<ffi::Map<ffi::Any, ffi::Any>>();
    if (!m.has_value()) Bad("field '" + field + "' is not an object");
    return *m;
  }
  std::string OptStr(const ffi::Map<ffi::Any, ffi::Any>& obj, const char* key) const {
    auto v = Find(obj, key);
    return v.has_value() ? Str(*v, key) : std::string();
  }

  std::vector<TensorInfo> Tensors(const ffi::Map<ffi::Any, ffi::Any>& root, const char* key) const {
    std::vector<TensorInfo> out;
    ffi::Array<ffi::Any> list = List(Need(root, key), key);
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string field = std::string(key) + "[" + std::to_string(i) + "]";
      ffi::Map<ffi::Any, ffi::Any> t = Obj(list[i], field);
      TensorInfo info;
      info.name = Str(Need(t, "name"), field + ".name");
      info.dtype = Str(Need(t, "dtype"), field + ".dtype");
      try {
        DTypeSize(info.dtype);
      } catch (const Error&) {
        Bad(field + " '" + info.name + "' has unsupported dtype '" + info.dtype + "'");
      }
      for (const ffi::Any& d : List(Need(t, "shape"), field + ".shape")) {
        int64_t dim = Int(d, field + ".shape");
        if (dim < 1 || dim > INT32_MAX) Bad(field + " '" + info.name + "' has a non-static or bad dimension");
        info.shape.push_back(dim);
      }
      out.push_back(std::move(info));
    }
    return out;
  }

  std::vector<float> Floats3(const ffi::Map<ffi::Any, ffi::Any>& pp, const char* key, float fill) const {
    auto v = Find(pp, key);
    if (!v.has_value()) return {fill, fill, fill};
    const std::string field = std::string("preprocess.") + key;
    std::vector<float> out;
    for (const ffi::Any& x : List(*v, field)) out.push_back(static_cast<float>(Number(x, field)));
    if (out.size() != 3) Bad("field '" + field + "' needs 3 values, has " + std::to_string(out.size()));
    return out;
  }

  ModelInfo Parse(const std::string& json) const {
    ffi::String err;
    ffi::Any doc = ffi::json::Parse(ffi::String(json), &err);
    if (!err.empty()) Bad("invalid JSON (" + std::string(err) + ")");
    ffi::Map<ffi::Any, ffi::Any> root = Obj(doc, "<document>");

    // Version checks come first: a newer format may have changed everything below.
    const int64_t format = Int(Need(root, "format_version"), "format_version");
    if (format != kMetadataFormatVersion) {
      Bad("format_version " + std::to_string(format) + " is not supported by this runtime (it reads version " +
          std::to_string(kMetadataFormatVersion) + ")");
    }
    ModelInfo info;
    info.json = json;
    info.tvm_version = Str(Need(root, "tvm_version"), "tvm_version");
    info.sdk_version = OptStr(root, "sdk_version");
    info.ncnn_version = OptStr(root, "ncnn_version");
    info.target = OptStr(root, "target");
    info.triple = OptStr(root, "triple");
    info.inputs = Tensors(root, "inputs");
    info.outputs = Tensors(root, "outputs");
    if (auto pp = Find(root, "preprocess")) {
      ffi::Map<ffi::Any, ffi::Any> p = Obj(*pp, "preprocess");
      info.preprocess.mean = Floats3(p, "mean", 0.f);
      info.preprocess.std = Floats3(p, "std", 1.f);
      for (float s : info.preprocess.std) {
        if (s == 0.f) Bad("field 'preprocess.std' has a zero");
      }
      if (auto c = Find(p, "color")) info.preprocess.color = Str(*c, "preprocess.color");
      if (info.preprocess.color != "RGB" && info.preprocess.color != "BGR") {
        Bad("field 'preprocess.color' is '" + info.preprocess.color + "', not RGB or BGR");
      }
    }
    if (auto labels = Find(root, "labels")) {
      for (const ffi::Any& l : List(*labels, "labels")) info.labels.push_back(Str(l, "labels[]"));
    }
    if (auto n = Find(root, "ncnn_regions")) info.ncnn_regions = static_cast<int>(Int(*n, "ncnn_regions"));
    return info;
  }
};

// The metadata JSON read straight from the file's bytes (model.so stores module blobs uncompressed), or "".
// Only used when loading failed: a model built by another TVM often fails inside TVM's own loader, and
// "built with TVM X, this runtime has Y" is the message that helps then.
std::string ScanMetadata(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t at = std::string::npos;
  for (const char version : {'\x01', '\x02'}) {  // magic + module format version (meta_module.cc)
    at = data.find(std::string("TVMNCNNM", 8) + version + std::string(3, '\0'));
    if (at != std::string::npos) break;
  }
  if (at == std::string::npos || at + 20 > data.size()) return "";
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(data[at + 12 + i]);
  if (len > data.size() - at - 20) return "";
  return data.substr(at + 20, len);
}

// "" when model.so was built by the versions this runtime has, else " was built with TVM X, but this
// runtime uses TVM Y; ..." for the first that differs. A model.so runs only with the exact TVM it was
// compiled by (TVM's own ABI and VM bytecode), the ncnn whose layers and param format its graphs were
// converted for, and the SDK whose module formats and metadata it carries. Versions a model does not
// record (older metadata had no sdk/ncnn fields) are not compared.
std::string VersionMismatch(const ModelInfo& info) {
  const struct {
    const char* what;
    const std::string& built;
    const char* runtime;
  } parts[] = {{"TVM", info.tvm_version, TvmVersion()},
               {"ncnn", info.ncnn_version, NcnnVersion()},
               {"tvm-ncnn SDK", info.sdk_version, SdkVersion()}};
  for (const auto& p : parts) {
    if (!p.built.empty() && p.built != p.runtime) {
      return std::string(" was built with ") + p.what + " " + p.built + ", but this runtime uses " + p.what + " " +
             p.runtime + "; re-export the model with the SDK that matches this runtime, or use the runtime "
             "built with it";
    }
  }
  return "";
}

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

// model.so carries its modules (ncnn graphs and weights, TVM code, metadata) as one blob in its read-only
// data, __tvm_ffi__library_bin. TVM's loader reads it once into module objects; after that its pages are
// only resident memory the size of the weights, counted against the process. They are clean, read-only
// file pages: let the kernel drop them (a later read would fault them back from the file, identical).
void ReleaseLibraryBlobPages(const std::string& abs_path) {
  void* handle = dlopen(abs_path.c_str(), RTLD_LAZY | RTLD_NOLOAD);  // the loader's handle, +1 reference
  if (handle == nullptr) return;
  void* blob = dlsym(handle, "__tvm_ffi__library_bin");
  Dl_info info{};
  ElfW(Sym)* sym = nullptr;
  if (blob != nullptr && dladdr1(blob, &info, reinterpret_cast<void**>(&sym), RTLD_DL_SYMENT) != 0 &&
      sym != nullptr && sym->st_size > 0) {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t start = reinterpret_cast<uintptr_t>(blob);
    const uintptr_t begin = (start + page - 1) / page * page, end = (start + sym->st_size) / page * page;
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }
  dlclose(handle);
}

// The model's input tensors (filled by every Run). The first ncnn region reads them in place when it can
// (runtime/src/ncnn_module.cc: 64-byte aligned, and ncnn's up-to-64-byte over-reads past the end staying in the
// page of the last byte). A page-sized tensor that malloc happened to place on a page boundary would fail that
// test every call and be copied each time: place the data so that it passes, in memory that really has the
// slack. Costs one page per input.
struct ViewFriendlyAlloc {
  static constexpr uintptr_t kAlign = 64, kSlack = 64;
  void AllocData(DLTensor* t) {
    const size_t nbytes = ffi::GetDataSize(*t);
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096);
    const size_t total = (nbytes + page + kSlack + kAlign - 1) / kAlign * kAlign;
    base = std::aligned_alloc(kAlign, total);
    if (base == nullptr) throw Error("out of memory allocating an input of " + std::to_string(nbytes) + " bytes");
    uintptr_t start = reinterpret_cast<uintptr_t>(base);
    auto fits = [&](uintptr_t s) { return nbytes == 0 || ((s + nbytes - 1) % page) + kSlack < page; };
    while (!fits(start) && start + kAlign + nbytes + kSlack <= reinterpret_cast<uintptr_t>(base) + total) {
      start += kAlign;
    }
    t->data = reinterpret_cast<void*>(start);
  }
  void FreeData(DLTensor*) { std::free(base); }
  void* base = nullptr;
};

ffi::Tensor NewInputTensor(const TensorInfo& in) {
  return ffi::Tensor::FromNDAlloc(ViewFriendlyAlloc(), ffi::ShapeView(in.shape.data(), in.shape.size()),
                                  ToDLDataType(in.dtype), DLDevice{kDLCPU, 0});
}

}  // namespace

ModelInfo ParseMetadata(const std::string& json, const std::string& where) { return MetaReader{where}.Parse(json); }

struct Model::Impl {
  std::string path;
  ModelInfo info;
  int threads = 1;
  bool fp16 = false;
  // Members die in reverse order: main and the VM before the loaded library their code lives in.
  ffi::Module exec{ffi::UnsafeInit()};
  ffi::Module vm{ffi::UnsafeInit()};
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
bool Model::fp16() const { return impl_->fp16; }

Model Model::Load(const std::string& path, const Options& options) {
  const std::string name = "model '" + path + "'";
  if (options.threads < 0 || options.threads > kMaxThreads) {
    throw Error("threads must be between 1 and " + std::to_string(kMaxThreads) + " (or 0 to detect), got " +
                std::to_string(options.threads));
  }
  const int64_t file_size = CheckReadableFile(path, "model");
  VerifySeal(path, file_size, CheckElf(path, file_size));  // before dlopen: TVM does not check its own code

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->threads = options.threads == 0 ? DetectThreads() : options.threads;
  impl->fp16 = options.fp16;

  // dlopen wants a path with a slash (else it searches the library path): make it absolute.
  char* resolved = realpath(path.c_str(), nullptr);
  if (resolved == nullptr) throw Error(name + ": cannot resolve the path");
  const std::string abs_path(resolved);
  std::free(resolved);

  try {
    // The ".so" loader directly: Module::LoadFromFile would pick a loader by the file's extension, and the
    // ELF check above already established what the file is, whatever it is called.
    const ffi::Optional<ffi::Function> load_so = ffi::Function::GetGlobal("ffi.Module.load_from_file.so");
    impl->exec = load_so.has_value() ? (*load_so)(abs_path, "so").cast<ffi::Module>()
                                     : ffi::Module::LoadFromFile(abs_path);
  } catch (const ffi::Error& e) {
    const std::string json = ScanMetadata(abs_path);
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
    // Configure every region before anything runs: the net is built on the first configure (or call),
    // and fp16 cannot change afterwards.
    std::unordered_set<const void*> seen;
    std::vector<ffi::Module> regions;
    CollectNcnnModules(impl->exec, &seen, &regions);
    if (static_cast<int>(regions.size()) != info.ncnn_regions) {
      throw Error(name + ": metadata says " + std::to_string(info.ncnn_regions) + " ncnn regions, the file holds " +
                  std::to_string(regions.size()));
    }
    for (ffi::Module& region : regions) {
      ffi::Optional<ffi::Function> configure = region->GetFunction("tvm_ncnn.configure");
      if (!configure.has_value()) throw Error(name + ": an ncnn region has no tvm_ncnn.configure function");
      (*configure)(impl->threads, impl->fp16);
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

  for (const TensorInfo& in : info.inputs) impl->inputs.push_back(NewInputTensor(in));
#ifdef __GLIBC__
  // Loading freed large buffers (module bytes, ncnn's unpacked weights) in the middle of the heap; glibc keeps
  // such free pages resident. Hand them back once, now that the long-lived allocations are made.
  malloc_trim(0);
#endif
  return Model(std::move(impl));
}

std::vector<Tensor> Model::Run(const std::vector<Tensor>& inputs) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  const std::vector<TensorInfo>& want = m.info.inputs;
  if (inputs.size() != want.size()) {
    throw Error("the model takes " + std::to_string(want.size()) + " input(s), got " + std::to_string(inputs.size()));
  }
  std::vector<ffi::AnyView> args;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (x.shape != want[i].shape || x.dtype != want[i].dtype) {
      throw Error("input '" + want[i].name + "' expects " + ShapeString(want[i].shape) + " " + want[i].dtype +
                  ", got " + ShapeString(x.shape) + " " + x.dtype);
    }
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
