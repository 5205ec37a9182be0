# cmake/monocypher.cmake -- Monocypher's Ed25519, the crypto behind signed model.so files (runtime/src/format/
# signature.cc; README "Trust"). Why Monocypher: two C files with no dependency, built from source into the runtime
# for every target (x86, the aarch64 bundle, the Conan package) with nothing to install on the device or the build
# machine; audited (Cure53, 2020); RFC 8032 Ed25519 (with SHA-512) in its optional/ folder.
#
#   include(cmake/monocypher.cmake)   ->   target `tvm_ncnn_monocypher` (OBJECT, PIC, symbols hidden)
#
#   cmake -DTVM_NCNN_DOWNLOAD_DIR=<dir> [-DTVM_NCNN_PYTHON=<python>] -P cmake/monocypher.cmake
#                                     -> fetches the archive and prints its path (the Conan recipe uses it)
#
# Source: the PyPI sdist monocypher-py==0.0.3, which carries the Monocypher 3.1.2 release unchanged (checked when
# it was pinned: monocypher.c/.h and optional/monocypher-ed25519.c/.h equal upstream's 3.1.2 tag but for the
# "version __git__" line the release script fills in). 3.1.2 is the release that answered Cure53's audit. Later
# releases changed the API (4.0) and fixed a timing leak in signing under clang -O1/-Os (4.0.3): signing runs
# once per export on the developer's machine, built here by GCC at -O2, and verifying handles no secret.
# Fetched by name and sha256-checked (cmake/pypi_file.cmake); -DMONOCYPHER_SDIST=<path> uses a local copy.
include_guard(GLOBAL)

set(TVM_NCNN_MONOCYPHER_SDIST_NAME "monocypher-py-0.0.3.tar.gz")
set(TVM_NCNN_MONOCYPHER_SHA256 "9f1da74704ade57be8f1f93c75526342b0c4515a9548a388cc2f6ddc62ac94a3")
set(_tvm_ncnn_monocypher_dir "monocypher-py-0.0.3/src/monocypher-3.1.2-src")  # inside the archive

include(${CMAKE_CURRENT_LIST_DIR}/pypi_file.cmake)

macro(tvm_ncnn_monocypher_sdist out)
  tvm_ncnn_pypi_file(${out} PROJECT monocypher-py FILE "${TVM_NCNN_MONOCYPHER_SDIST_NAME}"
                     SHA256 "${TVM_NCNN_MONOCYPHER_SHA256}" OVERRIDE "${MONOCYPHER_SDIST}" WHAT "monocypher.cmake")
endmacro()

tvm_ncnn_pypi_script(tvm_ncnn_monocypher_sdist)  # cmake -P: fetch into the given cache, print the path, stop here

set(MONOCYPHER_SDIST "" CACHE FILEPATH
    "${TVM_NCNN_MONOCYPHER_SDIST_NAME} to use instead of fetching it (sha256 is still checked)")
tvm_ncnn_monocypher_sdist(_monocypher_sdist)

# Only the four files we compile are unpacked (the Python binding around them is not used), again whenever the
# archive is newer than what was unpacked.
set(_src "${CMAKE_BINARY_DIR}/_deps/monocypher-src")
set(_files "${_tvm_ncnn_monocypher_dir}/monocypher.c" "${_tvm_ncnn_monocypher_dir}/monocypher.h"
           "${_tvm_ncnn_monocypher_dir}/optional/monocypher-ed25519.c"
           "${_tvm_ncnn_monocypher_dir}/optional/monocypher-ed25519.h")
set(_stamp "${_src}/.unpacked-${TVM_NCNN_MONOCYPHER_SHA256}")
if(NOT EXISTS "${_stamp}")
  file(REMOVE_RECURSE "${_src}")
  file(MAKE_DIRECTORY "${_src}")
  file(ARCHIVE_EXTRACT INPUT "${_monocypher_sdist}" DESTINATION "${_src}" PATTERNS ${_files})
  foreach(_f IN LISTS _files)
    if(NOT EXISTS "${_src}/${_f}")
      message(FATAL_ERROR "monocypher.cmake: ${_monocypher_sdist} has no ${_f}")
    endif()
  endforeach()
  # Its licence (BSD-2-Clause or CC0-1.0) is the comment that opens monocypher.c: shipped with the binaries.
  file(STRINGS "${_src}/${_tvm_ncnn_monocypher_dir}/monocypher.c" _lines)
  set(_license "")
  foreach(_line IN LISTS _lines)
    if(NOT _line MATCHES "^//")
      break()
    endif()
    string(REGEX REPLACE "^// ?" "" _line "${_line}")
    string(APPEND _license "${_line}\n")
  endforeach()
  file(WRITE "${_src}/LICENSE.txt" "${_license}")
  file(TOUCH "${_stamp}")
endif()
set(TVM_NCNN_MONOCYPHER_LICENSE "${_src}/LICENSE.txt")
set(TVM_NCNN_MONOCYPHER_INCLUDE_DIRS "${_src}/${_tvm_ncnn_monocypher_dir}"
    "${_src}/${_tvm_ncnn_monocypher_dir}/optional")

add_library(tvm_ncnn_monocypher OBJECT "${_src}/${_tvm_ncnn_monocypher_dir}/monocypher.c"
                                       "${_src}/${_tvm_ncnn_monocypher_dir}/optional/monocypher-ed25519.c")
target_include_directories(tvm_ncnn_monocypher PUBLIC ${TVM_NCNN_MONOCYPHER_INCLUDE_DIRS})
# Hidden: the runtime's own use only, no clash with another Monocypher (or a crypto_* symbol) in the process.
# -O2 whatever the build type (the library's own recommendation; an unoptimised debug build verifies 10x slower).
set_target_properties(tvm_ncnn_monocypher PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
target_compile_options(tvm_ncnn_monocypher PRIVATE -O2)
if(TVM_NCNN_SANITIZE)  # third-party code, like ncnn: built as it is
  target_compile_options(tvm_ncnn_monocypher PRIVATE -fno-sanitize=all)
endif()
message(STATUS "tvm-ncnn: Monocypher 3.1.2 (Ed25519) from ${_monocypher_sdist}")
