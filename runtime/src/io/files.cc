// File checks done before opening anything, so the error says what is wrong with the path itself
// (missing, a directory, unreadable) instead of a decoder's or dlopen's guess.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "internal.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {

int64_t CheckReadableFile(const std::string& path, const char* what) {
  const std::string prefix = std::string(what) + " '" + path + "': ";
  if (path.empty()) throw Error(std::string(what) + ": empty path");
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    throw Error(prefix + (errno == ENOENT ? "no such file" : std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) throw Error(prefix + "is a directory, not a file");
  if (!S_ISREG(st.st_mode)) throw Error(prefix + "is not a regular file");
  if (access(path.c_str(), R_OK) != 0) throw Error(prefix + "not readable (" + std::strerror(errno) + ")");
  return static_cast<int64_t>(st.st_size);
}

}  // namespace tvm_ncnn
