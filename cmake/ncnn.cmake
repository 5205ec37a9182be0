# cmake/ncnn.cmake -- vendored ncnn: built from the pinned PyPI sdist, static, PIC, CPU only, lean.
#
#   include(cmake/ncnn.cmake)   ->   target `ncnn` (static; link it PRIVATE; it brings OpenMP)
#
# Source: the PyPI sdist ncnn==${TVM_NCNN_NCNN_VERSION}, pinned and fetched by cmake/ncnn_sdist.cmake (cached in
# TVM_NCNN_DOWNLOAD_DIR, shared by all build dirs of this checkout; -DNCNN_SDIST=<path> skips the fetch), then
# unpacked by FetchContent into <build>/_deps/ncnn-src, the sha256 checked again.
#
# Lean build (a cold build is minutes on 2 cores, not ten):
#   * only the layers in TVM_NCNN_LAYERS are compiled (plus what ncnn creates internally);
#   * x86: SSE2 + runtime-dispatched AVX/FMA/F16C/AVX2/AVX-512 kernels, and the AVX-512 VNNI and AVX-VNNI
#     int8 dot-product variants (only convolution and gemm have them); BF16/FP16-arithmetic, the VNNI-INT8/16,
#     XOP, FMA4 and AVX-NE-CONVERT variants are off (CPUs we do not target);
#   * aarch64: NEON + the armv8.2 fp16 kernels and the armv8.2 dot-product (sdot) int8 kernels (both Pi 5);
#     the bf16/i8mm/SVE variants are off;
#   * int8 (export --precision int8), no bf16, no Vulkan, no tools/examples/benchmark/tests/python.
# Every NCNN_* knob below is a cache default: -DNCNN_AVX512=OFF etc. on the command line wins.
include_guard(GLOBAL)

include(${CMAKE_CURRENT_LIST_DIR}/ncnn_sdist.cmake)

# The ncnn layers we build, by ncnn class name. What the SDK's converter emits now or soon, plus
# what ncnn creates inside other layers or for layout/precision conversion:
#   Packing, Cast           Net::forward converts elempack / fp16 between layers
#   Padding, Crop           convolution and pooling pad/crop through them; Mat::copy_make_border
#   Flatten                 InnerProduct flattens its input through it
#   Gemm, InnerProduct      Convolution/Deconvolution/MatMul/InnerProduct run their sgemm as a Gemm;
#                           a 1x1 Convolution on a flat (1-D) input runs as an InnerProduct
#   Bias, Scale             Mat::substract_mean_normalize (image preprocessing)
#   Interp                  Mat resize helpers
#   Quantize, Dequantize,   the int8 layers' input quantization and output conversion (quantize_to_int8 and
#   Requantize              friends in mat.cpp create them; without them an int8 layer crashes)
#   Mish                    a Convolution's fused activation 5 (fused_activation.h)
# The aarch64 bundle's budget (10 MiB, tests/python/test_aarch64.py) had 3 KB left: LSTM (~90 KB of code at -Os,
# for text recognisers) is paid for by dropping BatchNorm, ELU, Eltwise, ExpandDims and Squeeze (~80 KB), which no
# converter writes and ncnn never creates itself (test_op_tables.py fails if a converter starts writing one); the
# bundle stays 10482686 bytes. GRU and RNN would cost another ~190 KB: their calls stay in TVM
# (ncnn/ops/recurrent.py BUILT).
set(TVM_NCNN_LAYERS
  Input MemoryData Split Concat Slice Crop Flatten Reshape Permute Padding Packing Cast Noop Dropout
  Convolution ConvolutionDepthWise Deconvolution DeconvolutionDepthWise InnerProduct Gemm MatMul
  Pooling Interp Scale Bias BinaryOp UnaryOp Softmax
  ReLU Clip Sigmoid HardSigmoid HardSwish Swish Mish PReLU TanH GELU
  Reduction LayerNorm ShuffleChannel LRN SDPA LSTM
  Quantize Dequantize Requantize)

set(TVM_NCNN_DOWNLOAD_DIR "${PROJECT_SOURCE_DIR}/build/_downloads" CACHE PATH
    "Where fetched source archives are cached (outside git)")
set(NCNN_SDIST "" CACHE FILEPATH
    "ncnn-${TVM_NCNN_NCNN_VERSION}.tar.gz to use instead of fetching it (sha256 is still checked)")

# ---------------------------------------------------------------------------------------------
# 1. The sdist, verified; 2. unpacked into the build tree (again only when the archive changes: FetchContent
# keeps a stamp). The archive's own timestamps are kept, so a re-unpack of the same sources rebuilds nothing.
tvm_ncnn_ncnn_sdist(_ncnn_sdist)
include(FetchContent)
set(_keep_times "")
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.24)
  set(_keep_times DOWNLOAD_EXTRACT_TIMESTAMP TRUE)
endif()
FetchContent_Declare(ncnn URL "${_ncnn_sdist}" URL_HASH SHA256=${TVM_NCNN_NCNN_SHA256} ${_keep_times})
# Populate, not MakeAvailable: the options below are chosen from the unpacked tree (its layer list) and must be
# set before ncnn's CMakeLists.txt runs (section 4).
FetchContent_GetProperties(ncnn)
if(NOT ncnn_POPULATED)
  FetchContent_Populate(ncnn)
endif()
set(TVM_NCNN_NCNN_SOURCE_DIR "${ncnn_SOURCE_DIR}")
if(NOT EXISTS "${TVM_NCNN_NCNN_SOURCE_DIR}/src/CMakeLists.txt")
  message(FATAL_ERROR "ncnn.cmake: ${_ncnn_sdist} does not hold the ncnn C++ tree")
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

# int8: models exported with --precision int8 carry int8 Convolution/InnerProduct/Gemm layers, which an ncnn
# without it refuses at load -- so it is not optional. Measured cost: see README ("Building").
_tvm_ncnn_force(NCNN_INT8 ON)
_tvm_ncnn_default(NCNN_BF16 OFF)
_tvm_ncnn_default(NCNN_PIXEL_DRAWING OFF)
# x86: SSE2 baseline + AVX/FMA/F16C/AVX2/AVX-512 runtime dispatch. AVX-512 stays: the machines we
# build and benchmark on have it (AMD EPYC, avx512f/bw/dq/vl), and without it a conv stack ran
# ~10% slower than the PyPI ncnn wheel (with it: equal, bit-identical outputs). It costs ~30% more
# compile time; -DNCNN_AVX512=OFF for quicker local builds.
_tvm_ncnn_default(NCNN_AVX512 ON)
# VNNI: ncnn's int8 convolution/gemm kernels with the VPDPBUSD dot product (this host and recent Intel/AMD).
_tvm_ncnn_default(NCNN_AVX512VNNI ON)
_tvm_ncnn_default(NCNN_AVXVNNI ON)
foreach(_o NCNN_AVX512BF16 NCNN_AVX512FP16
           NCNN_AVXVNNIINT8 NCNN_AVXVNNIINT16 NCNN_AVXNECONVERT NCNN_XOP NCNN_FMA4)
  _tvm_ncnn_default(${_o} OFF)
endforeach()
# aarch64: keep armv8.2 fp16 (+fp16fml) and the sdot int8 kernels for Pi 5 (Cortex-A76 has both; a Pi 4 runs
# the plain NEON int8 ones); bf16/i8mm/SVE kernels are of no use here.
_tvm_ncnn_default(NCNN_ARM82DOT ON)
foreach(_o NCNN_ARM84BF16 NCNN_ARM84I8MM NCNN_ARM86SVE NCNN_ARM86SVE2
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
add_subdirectory("${TVM_NCNN_NCNN_SOURCE_DIR}" "${ncnn_BINARY_DIR}" EXCLUDE_FROM_ALL)
if(NOT TARGET ncnn)
  message(FATAL_ERROR "ncnn.cmake: the ncnn source tree did not define the `ncnn` target")
endif()
# ncnn is third-party: its warnings (gcc 12 flags ~10k lines in the AVX-512 intrinsics alone) would bury ours,
# in its own build and, through its headers, in ours.
target_compile_options(ncnn PRIVATE -w)
# Each function and object in a section of its own, so that the runtime's link (--gc-sections) drops the parts of
# ncnn nothing calls: the deploy bundle has a size budget (DESIGN.md: under 10 MB).
target_compile_options(ncnn PRIVATE -ffunction-sections -fdata-sections)
# The recurrent layers cost the aarch64 bundle 448 KB at -O3 with their NEON, fp16 and sdot variants (LSTM, GRU and
# RNN together), 256 KB at -Os: -Os for their sources there only (x86 keeps -O3).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm)")
  foreach(_l lstm gru rnn)
    file(GLOB _src "${TVM_NCNN_NCNN_SOURCE_DIR}/src/layer/${_l}.cpp"
                   "${TVM_NCNN_NCNN_SOURCE_DIR}/src/layer/arm/${_l}_*.cpp")
    set_source_files_properties(${_src} DIRECTORY "${TVM_NCNN_NCNN_SOURCE_DIR}/src" PROPERTIES COMPILE_OPTIONS -Os)
  endforeach()
endif()
get_target_property(_inc ncnn INTERFACE_INCLUDE_DIRECTORIES)
set_target_properties(ncnn PROPERTIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_inc}")

message(STATUS "tvm-ncnn: ncnn ${TVM_NCNN_NCNN_VERSION} from ${_ncnn_sdist}, "
               "${CMAKE_SYSTEM_PROCESSOR}, layers: ${TVM_NCNN_LAYERS}")
