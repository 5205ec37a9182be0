// tvm_ncnn_global_function_names(): every global function name this process has, one per line. Export asks it of
// the runtime library loaded alone in a child process (sdk_python/tvm_ncnn/compile/runtime_functions.py) to refuse a model
// that calls a function deploy_app would not find. A plain C symbol, called through ctypes: the child then needs no
// tvm_ffi Python package, whose import also imports torch where it is installed (over a second, per export).
#include <tvm/ffi/function.h>

#include <string>

extern "C" const char* tvm_ncnn_global_function_names() {
  thread_local std::string names;  // owned here until the next call from the same thread
  names.clear();
  for (const tvm::ffi::String& name : tvm::ffi::Function::ListGlobalNames()) {
    names.append(name.data(), name.size());
    names.push_back('\n');
  }
  return names.c_str();
}
