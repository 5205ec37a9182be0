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
# Every path ends in a sha256 check against the pin: a wrong file is refused, never built (cmake/pypi_file.cmake).
include_guard(GLOBAL)

set(TVM_NCNN_NCNN_VERSION "1.0.20261020")
set(TVM_NCNN_NCNN_SHA256 "ad8cdd63e9755cfa8e23b9b6d9ce46156077d80298a89e7c3ba325ffccfca200")

include(${CMAKE_CURRENT_LIST_DIR}/pypi_file.cmake)

macro(tvm_ncnn_ncnn_sdist out)
  tvm_ncnn_pypi_file(${out} PROJECT ncnn FILE "ncnn-${TVM_NCNN_NCNN_VERSION}.tar.gz" SHA256 "${TVM_NCNN_NCNN_SHA256}"
                     OVERRIDE "${NCNN_SDIST}" WHAT "ncnn_sdist.cmake")
endmacro()

tvm_ncnn_pypi_script(tvm_ncnn_ncnn_sdist)  # cmake -P: fetch into the given cache, print the path
