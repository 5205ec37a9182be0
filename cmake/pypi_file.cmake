# cmake/pypi_file.cmake -- one pinned file of a PyPI project (an sdist whose C/C++ sources we build), fetched by
# its exact name and refused unless its sha256 is the pin. cmake/ncnn_sdist.cmake (ncnn) and
# cmake/monocypher.cmake (Monocypher) use it; nothing third-party is ever committed.
#
#   tvm_ncnn_pypi_file(<var> PROJECT <pypi name> FILE <file name> SHA256 <hex> [OVERRIDE <path>] [WHAT <label>])
#     -> <var> = path of the verified file
#   tvm_ncnn_pypi_script(<fetch>)   (at the file scope of a caller that defines <fetch>(<var>), a macro or function)
#     -> when that caller runs as `cmake -DTVM_NCNN_DOWNLOAD_DIR=<dir> [-DTVM_NCNN_PYTHON=<python>] -P <caller>`:
#        fetches with <fetch>, prints the path on stdout (the Conan recipe reads it) and ends the script there
#
# Where the file comes from, first that applies:
#   * OVERRIDE <path> (a -D<name>=<path> option of the caller): that file;
#   * <TVM_NCNN_DOWNLOAD_DIR>/<file name> (a cache shared by all build dirs of a checkout);
#   * the package locations pip is configured with (cmake/pip_file_urls.py lists the file's URLs there),
#     downloaded by CMake into the cache.
# Every path ends in a sha256 check against the pin: a wrong file is refused, never built.
include_guard(GLOBAL)

# Downloads `file_name` of `project` into `dest` from the first of pip's locations that has it with this sha256.
function(_tvm_ncnn_pypi_download python project dest sha256 what)
  get_filename_component(_name "${dest}" NAME)
  execute_process(COMMAND "${python}" "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/pip_file_urls.py" "${project}" "${_name}"
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
    if(_sha STREQUAL "${sha256}")
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
  message(FATAL_ERROR "${what}: could not fetch ${_name} (sha256 ${sha256}) from the package locations pip is "
                      "configured with (see the messages above); download it yourself and pass its path, or put "
                      "it in ${TVM_NCNN_DOWNLOAD_DIR}")
endfunction()

function(tvm_ncnn_pypi_file out)
  cmake_parse_arguments(PARSE_ARGV 1 _a "" "PROJECT;FILE;SHA256;OVERRIDE;WHAT" "")
  if(NOT _a_WHAT)
    set(_a_WHAT "pypi_file.cmake")
  endif()
  if(_a_OVERRIDE)
    get_filename_component(_path "${_a_OVERRIDE}" ABSOLUTE)
    if(NOT EXISTS "${_path}")
      message(FATAL_ERROR "${_a_WHAT}: ${_a_OVERRIDE} does not exist")
    endif()
    file(SHA256 "${_path}" _sha)
    if(NOT _sha STREQUAL _a_SHA256)
      message(FATAL_ERROR "${_a_WHAT}: ${_path} has sha256 ${_sha}, but ${_a_FILE} is pinned to ${_a_SHA256}")
    endif()
    set(${out} "${_path}" PARENT_SCOPE)
    return()
  endif()
  set(_path "${TVM_NCNN_DOWNLOAD_DIR}/${_a_FILE}")
  if(EXISTS "${_path}")
    file(SHA256 "${_path}" _sha)
    if(_sha STREQUAL _a_SHA256)
      set(${out} "${_path}" PARENT_SCOPE)
      return()
    endif()
    message(STATUS "tvm-ncnn: ${_path} does not match the pinned sha256; fetching it again")
  endif()
  set(_py "${TVM_NCNN_PYTHON}")  # cmake/tvm.cmake's choice, when it ran first
  if(NOT _py)
    find_program(TVM_NCNN_SDIST_PYTHON NAMES python3 python)
    set(_py "${TVM_NCNN_SDIST_PYTHON}")
  endif()
  if(NOT _py)
    message(FATAL_ERROR "${_a_WHAT}: no Python to read pip's configuration with; download ${_a_FILE} yourself and "
                        "pass its path")
  endif()
  file(MAKE_DIRECTORY "${TVM_NCNN_DOWNLOAD_DIR}")
  _tvm_ncnn_pypi_download("${_py}" "${_a_PROJECT}" "${_path}" "${_a_SHA256}" "${_a_WHAT}")
  set(${out} "${_path}" PARENT_SCOPE)
endfunction()

# The `cmake -P` use of a file that pins one (ncnn_sdist.cmake, monocypher.cmake). A macro: its return() ends the
# caller's script, and CMAKE_CURRENT_LIST_FILE is the caller's.
macro(tvm_ncnn_pypi_script fetch)
  if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
    _tvm_ncnn_pypi_print(${fetch})
    return()
  endif()
endmacro()

function(_tvm_ncnn_pypi_print fetch)
  get_filename_component(_script "${CMAKE_SCRIPT_MODE_FILE}" NAME)
  if(NOT TVM_NCNN_DOWNLOAD_DIR)
    message(FATAL_ERROR "usage: cmake -DTVM_NCNN_DOWNLOAD_DIR=<dir> [-DTVM_NCNN_PYTHON=<python>] "
                        "-P cmake/${_script}")
  endif()
  cmake_language(CALL ${fetch} _path)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "${_path}")  # stdout: message() would go to stderr
endfunction()
