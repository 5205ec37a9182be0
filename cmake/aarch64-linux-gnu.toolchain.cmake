# cmake/aarch64-linux-gnu.toolchain.cmake -- cross-compile for 64-bit ARM Linux (Raspberry Pi 4 / 5 on a
# 64-bit OS, and other aarch64 boards) with Debian's g++-aarch64-linux-gnu.
#
#   cmake -S . -B build/aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.toolchain.cmake \
#         -DTVM_NCNN_TVM_ROOT=<unpacked aarch64 apache-tvm + apache-tvm-ffi wheels>
#
# cmake/build_aarch64.sh does all of it (wheels, configure, build, deploy bundle).
#
# One binary serves every aarch64 board: the baseline is plain armv8-a (NEON); ncnn compiles its
# armv8.2 fp16 kernels with per-file -march flags and picks them at run time on CPUs that have them
# (Pi 5's Cortex-A76), so no -march/-mcpu here. -mtune only orders instructions; Cortex-A72 (Pi 4) is
# the default because on a Pi 5 the hot loops run in the separately compiled armv8.2 kernels anyway.
#
# Cache knobs: -DTVM_NCNN_CROSS_PREFIX=aarch64-linux-gnu- (compiler prefix),
#              -DTVM_NCNN_AARCH64_SYSROOT=/usr/aarch64-linux-gnu (target libraries; qemu's -L),
#              -DTVM_NCNN_AARCH64_TUNE=cortex-a72 (value of -mtune; empty: none).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(TVM_NCNN_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Cross compiler prefix (<prefix>gcc, <prefix>g++)")
set(TVM_NCNN_AARCH64_SYSROOT "/usr/aarch64-linux-gnu" CACHE PATH "Where the target's libraries and headers are")
set(TVM_NCNN_AARCH64_TUNE "cortex-a72" CACHE STRING "-mtune value for the aarch64 build (empty: none)")

# The toolchain file is read again for every try_compile project: keep the cache knobs visible there.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES
     TVM_NCNN_CROSS_PREFIX TVM_NCNN_AARCH64_SYSROOT TVM_NCNN_AARCH64_TUNE)

# A clear message when the cross compiler is missing, instead of CMake's "is not a full path to an
# existing compiler tool".
foreach(_lang_tool C:gcc CXX:g++)
  string(REPLACE ":" ";" _pair "${_lang_tool}")
  list(GET _pair 0 _lang)
  list(GET _pair 1 _tool)
  find_program(TVM_NCNN_CROSS_${_lang} NAMES "${TVM_NCNN_CROSS_PREFIX}${_tool}" NO_CMAKE_FIND_ROOT_PATH)
  if(NOT TVM_NCNN_CROSS_${_lang})
    message(FATAL_ERROR "aarch64 toolchain: ${TVM_NCNN_CROSS_PREFIX}${_tool} not found; install the Debian "
                        "package g++-aarch64-linux-gnu (apt-get install g++-aarch64-linux-gnu), or run "
                        "cmake/bootstrap.sh")
  endif()
  set(CMAKE_${_lang}_COMPILER "${TVM_NCNN_CROSS_${_lang}}")
endforeach()

# Target libraries and headers come from the sysroot only; programs (ninja, python, ccache) from the host.
set(CMAKE_FIND_ROOT_PATH "${TVM_NCNN_AARCH64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

if(TVM_NCNN_AARCH64_TUNE)
  set(CMAKE_C_FLAGS_INIT "-mtune=${TVM_NCNN_AARCH64_TUNE}")
  set(CMAKE_CXX_FLAGS_INIT "-mtune=${TVM_NCNN_AARCH64_TUNE}")
endif()

# try_run and ctest run target programs through qemu when it is installed (Debian package qemu-user).
find_program(TVM_NCNN_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static NO_CMAKE_FIND_ROOT_PATH)
if(TVM_NCNN_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${TVM_NCNN_QEMU_AARCH64};-L;${TVM_NCNN_AARCH64_SYSROOT}")
endif()
