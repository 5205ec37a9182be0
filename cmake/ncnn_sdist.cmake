# cmake/ncnn_sdist.cmake -- the ncnn source we build: the pinned PyPI sdist (it carries the whole C++ tree), and
# getting it into the download cache, checked against the pin. The pin is written here and nowhere else:
# cmake/ncnn.cmake, cmake/build_aarch64.sh and the Conan recipe take it from this file.
#
#   include(cmake/ncnn_sdist.cmake)
#   tvm_ncnn_ncnn_sdist(<var>)     -> <var> = path of the verified ncnn-<version>.tar.gz
#
#   cmake -DTVM_NCNN_DOWNLOAD_DIR=<dir> [-DTVM_NCNN_PYTHON=<python>] -P cmake/ncnn_sdist.cmake
#                                  -> the same as a command; prints the path (the Conan recipe uses it)
#
# Where the file comes from, first that applies:
#   * -DNCNN_SDIST=<path>: that file;
#   * <TVM_NCNN_DOWNLOAD_DIR>/ncnn-<version>.tar.gz (a cache shared by all build dirs of a checkout);
#   * the package locations pip is configured with (cmake/pip_file_urls.py lists the file's URLs there),
#     downloaded by CMake into the cache.
# Every path ends in a sha256 check against the pin: a wrong file is refused, never built.
include_guard(GLOBAL)

set(TVM_NCNN_NCNN_VERSION "1.0.20261020")
set(TVM_NCNN_NCNN_SHA256 "ad8cdd63e9755cfa8e23b9b6d9ce46156077d80298a89e7c3ba325ffccfca200")

# The file of a given sha256 (fatal otherwise).
function(_tvm_ncnn_check_sha256 path)
  file(SHA256 "${path}" _sha)
  if(NOT _sha STREQUAL TVM_NCNN_NCNN_SHA256)
    message(FATAL_ERROR "ncnn_sdist.cmake: ${path} has sha256 ${_sha}, but ncnn ${TVM_NCNN_NCNN_VERSION} "
                        "is pinned to ${TVM_NCNN_NCNN_SHA256}")
  endif()
endfunction()

# Downloads the sdist into `dest` from the first of pip's locations that has it, checking the sha256.
function(_tvm_ncnn_download_sdist python dest)
  get_filename_component(_name "${dest}" NAME)
  execute_process(COMMAND "${python}" "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/pip_file_urls.py" ncnn "${_name}"
                  OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
  string(REGEX MATCHALL "(^|\n)url [^\n]+" _urls "${_out}")
  string(REGEX MATCH "(^|\n)cert [^\n]+" _cert "${_out}")
  string(REGEX MATCH "(^|\n)timeout [^\n]+" _timeout "${_out}")
  set(_tls "")
  if(_cert)
    string(REGEX REPLACE "^\n?cert " "" _cert "${_cert}")
    set(_tls TLS_CAINFO "${_cert}")
  endif()
  string(REGEX REPLACE "^\n?timeout ([0-9]+).*" "\\1" _timeout "${_timeout}")
  if(NOT _timeout)
    set(_timeout 60)
  endif()
  foreach(_url IN LISTS _urls)
    string(REGEX REPLACE "^\n?url " "" _url "${_url}")
    message(STATUS "tvm-ncnn: fetching ${_url}")
    # To a temporary name first: an interrupted or wrong download never sits in the cache under the real one.
    # The hash is checked here rather than by EXPECTED_HASH, which would stop at the first wrong copy instead
    # of trying the next location.
    file(DOWNLOAD "${_url}" "${dest}.part" ${_tls} INACTIVITY_TIMEOUT ${_timeout} STATUS _status)
    list(GET _status 0 _code)
    set(_sha "")
    if(_code EQUAL 0)
      file(SHA256 "${dest}.part" _sha)
    endif()
    if(_sha STREQUAL TVM_NCNN_NCNN_SHA256)
      file(RENAME "${dest}.part" "${dest}")
      return()
    endif()
    file(REMOVE "${dest}.part")
    if(_code EQUAL 0)
      message(STATUS "tvm-ncnn: ${_url} has sha256 ${_sha}, not the pinned one; skipping it")
    else()
      message(STATUS "tvm-ncnn: ${_url} failed: ${_status}")
    endif()
  endforeach()
  message(FATAL_ERROR "ncnn_sdist.cmake: could not fetch ${_name} (sha256 ${TVM_NCNN_NCNN_SHA256}) from the "
                      "package locations pip is configured with (see the messages above); download it yourself "
                      "and pass -DNCNN_SDIST=<path>, or put it in ${TVM_NCNN_DOWNLOAD_DIR}")
endfunction()

function(tvm_ncnn_ncnn_sdist out)
  if(NCNN_SDIST)
    get_filename_component(_sdist "${NCNN_SDIST}" ABSOLUTE)
    if(NOT EXISTS "${_sdist}")
      message(FATAL_ERROR "ncnn_sdist.cmake: NCNN_SDIST=${NCNN_SDIST} does not exist")
    endif()
    _tvm_ncnn_check_sha256("${_sdist}")
    set(${out} "${_sdist}" PARENT_SCOPE)
    return()
  endif()
  set(_sdist "${TVM_NCNN_DOWNLOAD_DIR}/ncnn-${TVM_NCNN_NCNN_VERSION}.tar.gz")
  if(EXISTS "${_sdist}")
    file(SHA256 "${_sdist}" _sha)
    if(_sha STREQUAL TVM_NCNN_NCNN_SHA256)
      set(${out} "${_sdist}" PARENT_SCOPE)
      return()
    endif()
    message(STATUS "tvm-ncnn: ${_sdist} does not match the pinned sha256; fetching it again")
  endif()
  set(_py "${TVM_NCNN_PYTHON}")  # cmake/tvm.cmake's choice, when it ran first
  if(NOT _py)
    find_program(TVM_NCNN_SDIST_PYTHON NAMES python3 python)
    set(_py "${TVM_NCNN_SDIST_PYTHON}")
  endif()
  if(NOT _py)
    message(FATAL_ERROR "ncnn_sdist.cmake: no Python to read pip's configuration with; pass "
                        "-DNCNN_SDIST=<path to ncnn-${TVM_NCNN_NCNN_VERSION}.tar.gz>")
  endif()
  file(MAKE_DIRECTORY "${TVM_NCNN_DOWNLOAD_DIR}")
  _tvm_ncnn_download_sdist("${_py}" "${_sdist}")
  set(${out} "${_sdist}" PARENT_SCOPE)
endfunction()

# cmake -P: fetch into the given cache and print the path on stdout (message() would go to stderr).
if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  if(NOT TVM_NCNN_DOWNLOAD_DIR)
    message(FATAL_ERROR "usage: cmake -DTVM_NCNN_DOWNLOAD_DIR=<dir> [-DTVM_NCNN_PYTHON=<python>] "
                        "-P cmake/ncnn_sdist.cmake")
  endif()
  tvm_ncnn_ncnn_sdist(_path)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "${_path}")
endif()
