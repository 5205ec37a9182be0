# cmake/tvm.cmake -- the TVM runtime libraries and tvm-ffi headers, taken from the PyPI wheels.
#
# Two ways to point at them:
#   * default: ask a Python where the installed `apache-tvm` and `apache-tvm-ffi` wheels are. The
#     Python is -DPython3_EXECUTABLE=... if given, else <source>/.venv/bin/python if present, else
#     python3 from PATH. Nothing is imported (importlib.util.find_spec only), so this is fast.
#   * -DTVM_NCNN_TVM_ROOT=<dir>: a directory holding the unpacked wheels (its tvm/ and tvm_ffi/
#     folders and, for the version, the *.dist-info folders), e.g. the aarch64 wheels for a cross
#     build. -DTVM_NCNN_TVM_VERSION_OVERRIDE=<x> overrides the version found.
#
# Defines:
#   tvm_ncnn::tvm_ffi      IMPORTED shared library libtvm_ffi.so with the tvm-ffi (+dlpack) headers
#   tvm_ncnn::tvm_runtime  IMPORTED shared library libtvm_runtime.so (the Relax VM; reached only
#                          through the ffi registry, so link it with --no-as-needed)
#   TVM_NCNN_TVM_VERSION   apache-tvm version string, e.g. 0.27.0.post1
#   TVM_NCNN_TVM_FFI_VERSION
#   TVM_NCNN_TVM_LIB_DIR, TVM_NCNN_TVM_FFI_LIB_DIR, TVM_NCNN_TVM_FFI_INCLUDE_DIR
#   TVM_NCNN_PYTHON        the Python used (empty with TVM_NCNN_TVM_ROOT and no Python found)
include_guard(GLOBAL)

set(TVM_NCNN_TVM_ROOT "" CACHE PATH
    "Directory with unpacked apache-tvm/apache-tvm-ffi wheels (tvm/, tvm_ffi/); empty: ask Python")
set(TVM_NCNN_TVM_VERSION_OVERRIDE "" CACHE STRING
    "apache-tvm version to record instead of the one read from the wheel (rarely needed)")

# The Python interpreter: used here (wheel discovery) and by cmake/ncnn_sdist.cmake (reading pip's configuration).
function(_tvm_ncnn_pick_python out)
  if(Python3_EXECUTABLE)
    set(_py "${Python3_EXECUTABLE}")
  elseif(EXISTS "${PROJECT_SOURCE_DIR}/.venv/bin/python")
    set(_py "${PROJECT_SOURCE_DIR}/.venv/bin/python")
  else()
    find_program(TVM_NCNN_PYTHON3_PROGRAM NAMES python3 python)
    set(_py "${TVM_NCNN_PYTHON3_PROGRAM}")
  endif()
  set(${out} "${_py}" PARENT_SCOPE)
endfunction()
_tvm_ncnn_pick_python(TVM_NCNN_PYTHON)

# Reads "Version:" from <root>/<dist>-*.dist-info/METADATA.
function(_tvm_ncnn_wheel_version root dist out)
  file(GLOB _meta "${root}/${dist}-*.dist-info/METADATA")
  set(_ver "")
  if(_meta)
    list(GET _meta 0 _meta)
    file(STRINGS "${_meta}" _line REGEX "^Version: ")
    string(REGEX REPLACE "^Version: *" "" _ver "${_line}")
  endif()
  set(${out} "${_ver}" PARENT_SCOPE)
endfunction()

if(TVM_NCNN_TVM_ROOT)
  get_filename_component(_root "${TVM_NCNN_TVM_ROOT}" ABSOLUTE)
  set(_tvm_pkg "${_root}/tvm")
  set(_ffi_pkg "${_root}/tvm_ffi")
  if(NOT IS_DIRECTORY "${_tvm_pkg}" OR NOT IS_DIRECTORY "${_ffi_pkg}")
    message(FATAL_ERROR "tvm.cmake: TVM_NCNN_TVM_ROOT=${TVM_NCNN_TVM_ROOT} does not hold the "
                        "unpacked apache-tvm and apache-tvm-ffi wheels (tvm/ and tvm_ffi/)")
  endif()
  _tvm_ncnn_wheel_version("${_root}" apache_tvm _tvm_ver)
  _tvm_ncnn_wheel_version("${_root}" apache_tvm_ffi _ffi_ver)
else()
  if(NOT TVM_NCNN_PYTHON OR NOT EXISTS "${TVM_NCNN_PYTHON}")
    message(FATAL_ERROR "tvm.cmake: no Python found to locate the apache-tvm wheel; pass "
                        "-DPython3_EXECUTABLE=<python with apache-tvm> or -DTVM_NCNN_TVM_ROOT=<dir>")
  endif()
  set(_probe [=[
import importlib.metadata as md, importlib.util as u, os
def loc(mod):
    spec = u.find_spec(mod)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("module %s not found" % mod)
    return list(spec.submodule_search_locations)[0]
def ver(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return ""
print(";".join([loc("tvm"), loc("tvm_ffi"), ver("apache-tvm"), ver("apache-tvm-ffi")]))
]=])
  execute_process(COMMAND "${TVM_NCNN_PYTHON}" -c "${_probe}"
                  OUTPUT_VARIABLE _out ERROR_VARIABLE _err RESULT_VARIABLE _rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "tvm.cmake: ${TVM_NCNN_PYTHON} cannot find the apache-tvm wheel "
                        "(${_err}); install apache-tvm there or pass -DTVM_NCNN_TVM_ROOT=<dir>")
  endif()
  list(GET _out 0 _tvm_pkg)
  list(GET _out 1 _ffi_pkg)
  list(GET _out 2 _tvm_ver)
  list(GET _out 3 _ffi_ver)
endif()

if(TVM_NCNN_TVM_VERSION_OVERRIDE)
  set(_tvm_ver "${TVM_NCNN_TVM_VERSION_OVERRIDE}")
endif()
if(NOT _tvm_ver)
  message(FATAL_ERROR "tvm.cmake: cannot tell the apache-tvm version (no dist-info next to "
                      "${_tvm_pkg}); pass -DTVM_NCNN_TVM_VERSION_OVERRIDE=<version>")
endif()

set(TVM_NCNN_TVM_LIB_DIR "${_tvm_pkg}/lib")
set(TVM_NCNN_TVM_FFI_LIB_DIR "${_ffi_pkg}/lib")
set(TVM_NCNN_TVM_FFI_INCLUDE_DIR "${_ffi_pkg}/include")
set(TVM_NCNN_TVM_FFI_VERSION "${_ffi_ver}")
# A normal variable, recomputed at each configure, so a wheel upgrade is picked up.
set(TVM_NCNN_TVM_VERSION "${_tvm_ver}")

foreach(_f "${TVM_NCNN_TVM_LIB_DIR}/libtvm_runtime.so" "${TVM_NCNN_TVM_FFI_LIB_DIR}/libtvm_ffi.so"
           "${TVM_NCNN_TVM_FFI_INCLUDE_DIR}/tvm/ffi/extra/module.h"
           "${TVM_NCNN_TVM_FFI_INCLUDE_DIR}/dlpack/dlpack.h")
  if(NOT EXISTS "${_f}")
    message(FATAL_ERROR "tvm.cmake: ${_f} is missing; is this a complete apache-tvm / "
                        "apache-tvm-ffi wheel?")
  endif()
endforeach()

# The wheel libraries must be for the CPU we build for: a cross build pointed at the host's wheels (or
# the reverse) would otherwise fail at link time with "file in wrong format".
function(_tvm_ncnn_elf_machine file out)
  file(READ "${file}" _hdr LIMIT 20 HEX)
  set(_m "")
  if(_hdr MATCHES "^7f454c46")  # \x7fELF; e_machine: little-endian u16 at byte 18
    string(SUBSTRING "${_hdr}" 36 2 _lo)
    string(SUBSTRING "${_hdr}" 38 2 _hi)
    set(_m "${_hi}${_lo}")
  endif()
  set(${out} "${_m}" PARENT_SCOPE)
endfunction()
string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _proc)
set(_want "")
if(_proc MATCHES "^(aarch64|arm64|armv8)")
  set(_want "00b7" "aarch64")
elseif(_proc MATCHES "^(x86_64|amd64)$")
  set(_want "003e" "x86_64")
endif()
if(_want)
  list(GET _want 0 _want_m)
  list(GET _want 1 _want_name)
  foreach(_lib "${TVM_NCNN_TVM_LIB_DIR}/libtvm_runtime.so" "${TVM_NCNN_TVM_FFI_LIB_DIR}/libtvm_ffi.so")
    _tvm_ncnn_elf_machine("${_lib}" _m)
    if(NOT _m STREQUAL _want_m)
      message(FATAL_ERROR "tvm.cmake: ${_lib} is not an ${_want_name} library (ELF machine 0x${_m}), but "
                          "this build is for ${CMAKE_SYSTEM_PROCESSOR}; pass -DTVM_NCNN_TVM_ROOT=<the unpacked "
                          "${_want_name} apache-tvm / apache-tvm-ffi wheels> (cmake/build_aarch64.sh does it "
                          "for aarch64)")
    endif()
  endforeach()
endif()

if(NOT TARGET tvm_ncnn::tvm_ffi)
  add_library(tvm_ncnn::tvm_ffi SHARED IMPORTED GLOBAL)
  set_target_properties(tvm_ncnn::tvm_ffi PROPERTIES
    IMPORTED_LOCATION "${TVM_NCNN_TVM_FFI_LIB_DIR}/libtvm_ffi.so"
    IMPORTED_SONAME "libtvm_ffi.so"
    INTERFACE_INCLUDE_DIRECTORIES "${TVM_NCNN_TVM_FFI_INCLUDE_DIR}")
  add_library(tvm_ncnn::tvm_runtime SHARED IMPORTED GLOBAL)
  set_target_properties(tvm_ncnn::tvm_runtime PROPERTIES
    IMPORTED_LOCATION "${TVM_NCNN_TVM_LIB_DIR}/libtvm_runtime.so"
    IMPORTED_SONAME "libtvm_runtime.so"
    INTERFACE_LINK_LIBRARIES tvm_ncnn::tvm_ffi)
endif()

message(STATUS "tvm-ncnn: apache-tvm ${TVM_NCNN_TVM_VERSION}, apache-tvm-ffi ${TVM_NCNN_TVM_FFI_VERSION} "
               "(${TVM_NCNN_TVM_LIB_DIR}, ${TVM_NCNN_TVM_FFI_LIB_DIR})")
