# cmake/ncnn.cmake -- vendored ncnn: built from the pinned PyPI sdist, static, PIC, CPU only, lean.
#
#   include(cmake/ncnn.cmake)   ->   target `ncnn` (static; link it PRIVATE; it brings OpenMP)
#
# Source: the PyPI sdist ncnn==${TVM_NCNN_NCNN_VERSION} (it carries the whole C++ tree). It is fetched
# once by cmake/fetch_sdist.py from the package index pip is configured with, checked against the
# pinned sha256 and cached in TVM_NCNN_DOWNLOAD_DIR (shared by all build dirs of this checkout).
# -DNCNN_SDIST=<path to ncnn-1.0.20261020.tar.gz> skips the fetch (the file is still hash-checked).
#
# Lean build (a cold build is minutes on 2 cores, not ten):
#   * only the layers in TVM_NCNN_LAYERS are compiled (plus what ncnn creates internally);
#   * x86: SSE2 + runtime-dispatched AVX/FMA/F16C/AVX2/AVX-512 fp32 kernels; the AVX-512 VNNI/BF16/
#     FP16, AVX-VNNI, XOP, FMA4 and AVX-NE-CONVERT variants are off (int8/bf16/fp16-arithmetic
#     paths, or CPUs we do not target);
#   * aarch64: NEON + the armv8.2 fp16 kernels (Pi 5); the bf16/i8mm/SVE variants are off;
#   * no int8, no bf16, no Vulkan, no tools/examples/benchmark/tests/python (not in the sdist).
# Every NCNN_* knob below is a cache default: -DNCNN_AVX512=OFF etc. on the command line wins.
include_guard(GLOBAL)

set(TVM_NCNN_NCNN_VERSION "1.0.20261020")
set(TVM_NCNN_NCNN_SHA256 "ad8cdd63e9755cfa8e23b9b6d9ce46156077d80298a89e7c3ba325ffccfca200")

# The ncnn layers we build, by ncnn class name. What the SDK's converter emits now or soon, plus
# what ncnn creates inside other layers or for layout/precision conversion:
#   Packing, Cast           Net::forward converts elempack / fp16 between layers
#   Padding, Crop           convolution and pooling pad/crop through them; Mat::copy_make_border
#   Flatten                 InnerProduct flattens its input through it
#   Gemm, InnerProduct      Convolution/Deconvolution/MatMul/InnerProduct run their sgemm as a Gemm;
#                           a 1x1 Convolution on a flat (1-D) input runs as an InnerProduct
#   Bias, Scale             Mat::substract_mean_normalize (image preprocessing)
#   Interp                  Mat resize helpers
set(TVM_NCNN_LAYERS
  Input MemoryData Split Concat Slice Crop Flatten Reshape Permute Padding Packing Cast Noop Dropout
  Convolution ConvolutionDepthWise Deconvolution DeconvolutionDepthWise InnerProduct Gemm MatMul
  Pooling Interp BatchNorm Scale Bias BinaryOp Eltwise UnaryOp Softmax
  ReLU Clip Sigmoid HardSigmoid HardSwish Swish Mish PReLU TanH ELU GELU
  Reduction LayerNorm ExpandDims Squeeze ShuffleChannel LRN)

set(TVM_NCNN_DOWNLOAD_DIR "${PROJECT_SOURCE_DIR}/build/_downloads" CACHE PATH
    "Where fetched source archives are cached (outside git)")
set(NCNN_SDIST "" CACHE FILEPATH
    "ncnn-${TVM_NCNN_NCNN_VERSION}.tar.gz to use instead of fetching it (sha256 is still checked)")

# ---------------------------------------------------------------------------------------------
# 1. The sdist: given, or fetched and cached.
if(NCNN_SDIST)
  get_filename_component(_ncnn_sdist "${NCNN_SDIST}" ABSOLUTE)
  if(NOT EXISTS "${_ncnn_sdist}")
    message(FATAL_ERROR "ncnn.cmake: NCNN_SDIST=${NCNN_SDIST} does not exist")
  endif()
  file(SHA256 "${_ncnn_sdist}" _sha)
  if(NOT _sha STREQUAL TVM_NCNN_NCNN_SHA256)
    message(FATAL_ERROR "ncnn.cmake: ${_ncnn_sdist} has sha256 ${_sha}, but ncnn "
                        "${TVM_NCNN_NCNN_VERSION} is pinned to ${TVM_NCNN_NCNN_SHA256}")
  endif()
else()
  set(_ncnn_cached "${TVM_NCNN_DOWNLOAD_DIR}/ncnn-${TVM_NCNN_NCNN_VERSION}.tar.gz")
  set(_sha "")
  if(EXISTS "${_ncnn_cached}")
    file(SHA256 "${_ncnn_cached}" _sha)
  endif()
  if(_sha STREQUAL TVM_NCNN_NCNN_SHA256)
    set(_ncnn_sdist "${_ncnn_cached}")
  else()
    set(_py "${TVM_NCNN_PYTHON}")  # from cmake/tvm.cmake when included first
    if(NOT _py)
      find_package(Python3 COMPONENTS Interpreter)
      set(_py "${Python3_EXECUTABLE}")
    endif()
    if(NOT _py)
      message(FATAL_ERROR "ncnn.cmake: no Python to fetch the ncnn sdist; pass "
                          "-DNCNN_SDIST=<path to ncnn-${TVM_NCNN_NCNN_VERSION}.tar.gz>")
    endif()
    message(STATUS "tvm-ncnn: fetching ncnn ${TVM_NCNN_NCNN_VERSION} sdist into ${TVM_NCNN_DOWNLOAD_DIR}")
    execute_process(
      COMMAND "${_py}" "${CMAKE_CURRENT_LIST_DIR}/fetch_sdist.py" --name ncnn
              --version ${TVM_NCNN_NCNN_VERSION} --sha256 ${TVM_NCNN_NCNN_SHA256}
              --dest "${TVM_NCNN_DOWNLOAD_DIR}"
      OUTPUT_VARIABLE _ncnn_sdist RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT _rc EQUAL 0 OR NOT EXISTS "${_ncnn_sdist}")
      message(FATAL_ERROR "ncnn.cmake: could not fetch the ncnn ${TVM_NCNN_NCNN_VERSION} sdist "
                          "(see the messages above); download it yourself and pass "
                          "-DNCNN_SDIST=<path>")
    endif()
  endif()
endif()

# ---------------------------------------------------------------------------------------------
# 2. Unpack into the build tree (again only when the pinned archive changes).
set(TVM_NCNN_NCNN_SOURCE_DIR "${CMAKE_BINARY_DIR}/_deps/ncnn-src")
set(_stamp "${CMAKE_BINARY_DIR}/_deps/ncnn-src.sha256")
set(_have "")
if(EXISTS "${_stamp}")
  file(READ "${_stamp}" _have)
endif()
if(NOT _have STREQUAL TVM_NCNN_NCNN_SHA256 OR NOT EXISTS "${TVM_NCNN_NCNN_SOURCE_DIR}/CMakeLists.txt")
  set(_tmp "${CMAKE_BINARY_DIR}/_deps/ncnn-unpack")
  file(REMOVE_RECURSE "${_tmp}" "${TVM_NCNN_NCNN_SOURCE_DIR}")
  file(ARCHIVE_EXTRACT INPUT "${_ncnn_sdist}" DESTINATION "${_tmp}")
  set(_top "${_tmp}/ncnn-${TVM_NCNN_NCNN_VERSION}")
  if(NOT EXISTS "${_top}/CMakeLists.txt" OR NOT EXISTS "${_top}/src/CMakeLists.txt")
    message(FATAL_ERROR "ncnn.cmake: ${_ncnn_sdist} does not hold the ncnn C++ tree")
  endif()
  file(RENAME "${_top}" "${TVM_NCNN_NCNN_SOURCE_DIR}")
  file(REMOVE_RECURSE "${_tmp}")
  file(WRITE "${_stamp}" "${TVM_NCNN_NCNN_SHA256}")
endif()

# ---------------------------------------------------------------------------------------------
# 3. Options. Forced: what the product needs. Cache defaults: the lean choices (overridable).
string(REGEX MATCH "[0-9]+$" _date "${TVM_NCNN_NCNN_VERSION}")
set(NCNN_VERSION "${_date}" CACHE STRING "ncnn version date (else ncnn stamps today's)" FORCE)

macro(_tvm_ncnn_force name value)
  set(${name} ${value} CACHE BOOL "set by tvm-ncnn (cmake/ncnn.cmake)" FORCE)
endmacro()
macro(_tvm_ncnn_default name value)
  set(${name} ${value} CACHE BOOL "tvm-ncnn default (cmake/ncnn.cmake); may be overridden")
endmacro()

foreach(_o NCNN_SHARED_LIB NCNN_VULKAN NCNN_BUILD_TOOLS NCNN_BUILD_EXAMPLES NCNN_BUILD_BENCHMARK
           NCNN_BUILD_TESTS NCNN_PYTHON NCNN_INSTALL_SDK NCNN_DISABLE_PIC NCNN_SIMPLEOMP
           NCNN_SIMPLESTL NCNN_DISABLE_EXCEPTION NCNN_DISABLE_RTTI)
  _tvm_ncnn_force(${_o} OFF)
endforeach()
# STRING/STDIO: load_param_mem (text .param) and simpleocv imread; OPENMP: ncnn's threading.
foreach(_o NCNN_STRING NCNN_STDIO NCNN_OPENMP NCNN_THREADS NCNN_SIMPLEOCV NCNN_PIXEL
           NCNN_RUNTIME_CPU)
  _tvm_ncnn_force(${_o} ON)
endforeach()

_tvm_ncnn_default(NCNN_INT8 OFF)
_tvm_ncnn_default(NCNN_BF16 OFF)
_tvm_ncnn_default(NCNN_PIXEL_DRAWING OFF)
# x86: SSE2 baseline + AVX/FMA/F16C/AVX2/AVX-512 runtime dispatch. AVX-512 stays: the machines we
# build and benchmark on have it (AMD EPYC, avx512f/bw/dq/vl), and without it a conv stack ran
# ~10% slower than the PyPI ncnn wheel (with it: equal, bit-identical outputs). It costs ~30% more
# compile time; -DNCNN_AVX512=OFF for quicker local builds.
_tvm_ncnn_default(NCNN_AVX512 ON)
foreach(_o NCNN_AVX512VNNI NCNN_AVX512BF16 NCNN_AVX512FP16 NCNN_AVXVNNI
           NCNN_AVXVNNIINT8 NCNN_AVXVNNIINT16 NCNN_AVXNECONVERT NCNN_XOP NCNN_FMA4)
  _tvm_ncnn_default(${_o} OFF)
endforeach()
# aarch64: keep armv8.2 fp16 (+fp16fml) for Pi 5; int8/bf16/SVE kernels are of no use here.
foreach(_o NCNN_ARM82DOT NCNN_ARM84BF16 NCNN_ARM84I8MM NCNN_ARM86SVE NCNN_ARM86SVE2
           NCNN_ARM86SVEBF16 NCNN_ARM86SVEI8MM NCNN_ARM86SVEF32MM)
  _tvm_ncnn_default(${_o} OFF)
endforeach()

# Layers: WITH_LAYER_<lowercase> for every layer ncnn declares, ON exactly for TVM_NCNN_LAYERS.
file(STRINGS "${TVM_NCNN_NCNN_SOURCE_DIR}/src/CMakeLists.txt" _decls REGEX "^ncnn_add_layer\\(")
set(_known "")
foreach(_d IN LISTS _decls)
  string(REGEX REPLACE "^ncnn_add_layer\\(([A-Za-z0-9_]+).*" "\\1" _cls "${_d}")
  list(APPEND _known "${_cls}")
  string(TOLOWER "${_cls}" _lc)
  if(_cls IN_LIST TVM_NCNN_LAYERS)
    _tvm_ncnn_force(WITH_LAYER_${_lc} ON)
  else()
    _tvm_ncnn_force(WITH_LAYER_${_lc} OFF)
  endif()
endforeach()
foreach(_cls IN LISTS TVM_NCNN_LAYERS)
  if(NOT _cls IN_LIST _known)
    message(FATAL_ERROR "ncnn.cmake: TVM_NCNN_LAYERS names '${_cls}', which is not an ncnn "
                        "${TVM_NCNN_NCNN_VERSION} layer (names are case-sensitive class names)")
  endif()
endforeach()

# ncnn declares cmake_minimum_required(... 3.10): let its option() calls see our values.
set(CMAKE_POLICY_DEFAULT_CMP0077 NEW)

# ---------------------------------------------------------------------------------------------
# 4. Build it as part of this project; only what links against `ncnn` pulls it in.
add_subdirectory("${TVM_NCNN_NCNN_SOURCE_DIR}" "${CMAKE_BINARY_DIR}/_deps/ncnn-build" EXCLUDE_FROM_ALL)
if(NOT TARGET ncnn)
  message(FATAL_ERROR "ncnn.cmake: the ncnn source tree did not define the `ncnn` target")
endif()
# ncnn is third-party: its warnings (gcc 12 flags ~10k lines in the AVX-512 intrinsics alone) would bury ours,
# in its own build and, through its headers, in ours.
target_compile_options(ncnn PRIVATE -w)
get_target_property(_inc ncnn INTERFACE_INCLUDE_DIRECTORIES)
set_target_properties(ncnn PROPERTIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_inc}")

message(STATUS "tvm-ncnn: ncnn ${TVM_NCNN_NCNN_VERSION} from ${_ncnn_sdist}, "
               "${CMAKE_SYSTEM_PROCESSOR}, layers: ${TVM_NCNN_LAYERS}")
