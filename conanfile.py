"""Conan 2 recipe: the tvm-ncnn C++ runtime for C++ apps (host and cross, e.g. armv8 for Raspberry Pi).

    conan create . -nr -pr:h cmake/conan/host  -pr:b cmake/conan/host     # this machine
    conan create . -nr -pr:h cmake/conan/armv8 -pr:b cmake/conan/host     # Raspberry Pi 4/5 (aarch64)

The package: lib/libtvm_ncnn_runtime.so (ncnn built in, from the pinned PyPI sdist), lib/libtvm_runtime.so
and lib/libtvm_ffi.so (from the apache-tvm / apache-tvm-ffi wheels of exactly the versions the SDK pins in
sdk_python/requirements-dev.txt), lib/libgomp.so.1 (the compiler's OpenMP runtime, which ncnn uses),
include/ (tvm_ncnn/runtime.h, the tvm-ffi headers), bin/deploy_app, and lib/cmake/tvm_ncnn/ (the same CMake
package files as `cmake --install`). Consumers:

    find_package(tvm_ncnn REQUIRED)
    target_link_libraries(app PRIVATE tvm_ncnn::runtime)

To ship an app (e.g. to a Pi): `conan install ... --deployer=runtime_deploy --deployer-folder=DIR` copies
the package's shared libraries and deploy_app flat into DIR; every one of them finds the others through
RUNPATH $ORIGIN. The app, installed into DIR with INSTALL_RPATH $ORIGIN, then runs with DIR alone
(README, "Ship the app to a Pi"; tests/conan/check_deploy.py).

Where the inputs come from (nothing from a Conan remote):
  * The version: sdk_python/pyproject.toml's, the SDK's (CMakeLists.txt reads it there too).
  * ncnn: the sdist ncnn==<cmake/ncnn_sdist.cmake's pin>, fetched by name from the package locations pip is
    configured with and checked against the pinned sha256 (cmake/ncnn_sdist.cmake, cached in build/_downloads/
    of the checkout), then exported with the recipe's sources: once exported, building the package needs no
    network. Monocypher (Ed25519 for signed model.so files) the same way, by cmake/monocypher.cmake.
  * TVM runtime libraries for the package's arch, found, fetched and checked by cmake/tvm_wheels.py, by conf
    (the profiles in cmake/conan/ set them):
      user.tvm_ncnn:tvm_root   a folder with the unpacked wheels (tvm/, tvm_ffi/, *.dist-info/)
      user.tvm_ncnn:downloads  a download cache (the checkout's build/_downloads): the unpacked wheels
                               are taken from tvm-<arch>-<tvm>-ffi-<ffi>/ there (cmake/build_aarch64.sh
                               uses the same), fetched once with pip when missing
      user.tvm_ncnn:python     the Python that runs cmake/tvm_wheels.py, with the apache-tvm wheel installed
                               (native builds take the libraries from it; default: the Python running Conan)
Options: shared (default True): libtvm_ncnn_runtime.so. shared=False: libtvm_ncnn_runtime.a with ncnn's
objects inside, linked --whole-archive (the ffi registrations of the `ncnn` and `tvm_ncnn_meta` module
loaders are static initializers in objects nothing references by name; a plain link would drop them and
model.so would not load); libtvm_runtime.so and libtvm_ffi.so stay shared (the wheels have nothing else),
and ncnn's symbols become part of the app (the .so hides them), so an app with its own ncnn must use the
shared runtime. fPIC (static only, default True).
"""
import json
import os
import re
import shutil
import subprocess
import sys

from conan import ConanFile
from conan.errors import ConanException, ConanInvalidConfiguration
from conan.tools.build import cross_building
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load

required_conan_version = ">=2.0"

# cmake/tvm_wheels.py's architecture names per Conan arch.
_WHEEL_ARCH = {"x86_64": "x86_64", "armv8": "aarch64"}


class TvmNcnnConan(ConanFile):
    name = "tvm_ncnn"
    description = ("tvm-ncnn C++ runtime: loads a model.so exported by the tvm-ncnn SDK (ncnn regions + "
                   "TVM-compiled code, Relax VM) and runs it, no Python")
    # The package bundles the TVM runtime libraries (Apache-2.0), ncnn (BSD-3-Clause) and Monocypher (BSD-2-Clause
    # or CC0-1.0, compiled in); their license texts are in licenses/. (tvm-ncnn itself declares no license yet.)
    license = "Apache-2.0", "BSD-3-Clause", "BSD-2-Clause"
    topics = ("tvm", "ncnn", "inference", "raspberry-pi")
    package_type = "library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"shared": [True, False], "fPIC": [True, False]}
    default_options = {"shared": True, "fPIC": True}
    test_package_folder = "tests/conan/test_package"
    # The SDK's version and pins (the package carries exactly the TVM runtime the SDK exports model.so files
    # with), and the script that finds and checks that runtime.
    exports = "sdk_python/pyproject.toml", "sdk_python/requirements-dev.txt", "cmake/tvm_wheels.py"

    # ---------------------------------------------------------------------------------------------
    def set_version(self):
        text = load(self, os.path.join(self.recipe_folder, "sdk_python", "pyproject.toml"))
        m = re.search(r'^version\s*=\s*"([0-9][0-9.]*)"', text, re.M)
        if not m:
            raise ConanException('conanfile.py: no `version = "x.y.z"` in sdk_python/pyproject.toml')
        self.version = m.group(1)

    @staticmethod
    def _tool_python():
        """A Python for helper scripts: the one running Conan, unless Conan is a frozen executable."""
        if os.path.basename(sys.executable).startswith("python"):
            return sys.executable
        return shutil.which("python3") or "python3"

    def export_sources(self):
        src, dst = self.recipe_folder, self.export_sources_folder
        for pattern in ("CMakeLists.txt", "sdk_python/pyproject.toml", "cmake/tvm.cmake", "cmake/ncnn.cmake",
                        "cmake/ncnn_sdist.cmake", "cmake/pip_file_urls.py", "cmake/tvm_ncnnConfig.cmake.in",
                        "cmake/pypi_file.cmake", "cmake/monocypher.cmake",
                        "runtime/CMakeLists.txt", "runtime/include/*", "runtime/src/*", "deploy_app/CMakeLists.txt",
                        "deploy_app/*.cc", "deploy_app/*.h"):
            copy(self, pattern, src, dst)
        # The ncnn and Monocypher sdists: by cmake/ncnn_sdist.cmake and cmake/monocypher.cmake into
        # build/_downloads (the cache the CMake build uses too); never committed, carried here with the sources.
        cache = os.path.join(src, "build", "_downloads")
        for what, script in (("ncnn", "ncnn_sdist.cmake"), ("Monocypher", "monocypher.cmake")):
            proc = subprocess.run(["cmake", f"-DTVM_NCNN_DOWNLOAD_DIR={cache}",
                                   f"-DTVM_NCNN_PYTHON={self._tool_python()}", "-P", os.path.join(src, "cmake", script)],
                                  capture_output=True, text=True, check=False)
            sdist = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            if proc.returncode != 0 or not os.path.isfile(sdist):
                raise ConanException(f"could not fetch the {what} sdist:\n{proc.stderr}")
            copy(self, os.path.basename(sdist), os.path.dirname(sdist), os.path.join(dst, "_downloads"))

    # ---------------------------------------------------------------------------------------------
    def validate(self):
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration("tvm_ncnn: Linux only (the TVM runtime wheels are manylinux)")
        if str(self.settings.arch) not in _WHEEL_ARCH:
            raise ConanInvalidConfiguration(f"tvm_ncnn: arch {self.settings.arch} is not supported "
                                            f"(supported: {', '.join(_WHEEL_ARCH)})")
        libcxx = self.settings.get_safe("compiler.libcxx")
        if libcxx and libcxx != "libstdc++11":
            raise ConanInvalidConfiguration("tvm_ncnn: needs compiler.libcxx=libstdc++11 (the TVM wheels use "
                                            "the C++11 ABI of libstdc++)")

    def configure(self):
        if self.options.shared:
            self.options.rm_safe("fPIC")

    def package_id(self):
        # Always compiled as C++17 (CMakeLists.txt), whatever the consumer's cppstd.
        self.info.settings.rm_safe("compiler.cppstd")

    def layout(self):
        cmake_layout(self)

    # ---------------------------------------------------------------------------------------------
    def _tvm(self):
        """Where the TVM runtime libraries for this package's arch are, as cmake/tvm_wheels.py describes them
        (root, versions, licenses), checked to be the versions the SDK pins."""
        arch = _WHEEL_ARCH[str(self.settings.arch)]
        root = self.conf.get("user.tvm_ncnn:tvm_root")
        downloads = self.conf.get("user.tvm_ncnn:downloads")
        if root:
            args = ["describe", "--root", root, "--arch", arch]
        elif downloads:
            args = ["fetch", "--arch", arch, "--dest", downloads, "--pinned"]
        elif cross_building(self):
            raise ConanException("cross build: set -c user.tvm_ncnn:downloads=<checkout>/build/_downloads "
                                 "(cmake/conan/armv8 does) or -c user.tvm_ncnn:tvm_root=<unpacked "
                                 f"{self.settings.arch} wheels>")
        else:
            args = ["describe", "--installed"]
        python = self.conf.get("user.tvm_ncnn:python") or self._tool_python()
        proc = subprocess.run([python, os.path.join(self.recipe_folder, "cmake", "tvm_wheels.py"), *args,
                               "--require-pinned"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ConanException(f"{proc.stderr.strip()}\n(user.tvm_ncnn:python {python}; the profiles in "
                                 "cmake/conan/ set it to the SDK's .venv Python)")
        return json.loads(proc.stdout)

    def generate(self):
        info = self._tvm()
        tc = CMakeToolchain(self)
        if str(self.settings.arch) == "x86_64":
            # -m64 is gcc's default there; leaving it out keeps the compile lines identical to the
            # plain CMake build's, so ccache reuses its objects (ncnn is most of the build time).
            tc.blocks.remove("arch_flags")
        cv = tc.cache_variables
        cv["TVM_NCNN_BUILD_TESTS"] = False
        cv["TVM_NCNN_BUILD_BENCHMARKS"] = False
        cv["TVM_NCNN_SHARED"] = bool(self.options.shared)
        cv["TVM_NCNN_INSTALL"] = True
        # export_sources put the verified ncnn sdist there: cmake/ncnn_sdist.cmake finds it, no network.
        cv["TVM_NCNN_DOWNLOAD_DIR"] = os.path.join(self.source_folder, "_downloads")
        cv["TVM_NCNN_TVM_ROOT"] = info["root"]  # unpacked wheels, or a site-packages folder
        tc.generate()
        # For package(): the wheels' license files.
        with open(os.path.join(self.build_folder, "tvm_licenses.json"), "w", encoding="utf-8") as f:
            json.dump(info["licenses"], f)

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        CMake(self).install()
        licenses = os.path.join(self.package_folder, "licenses")
        for name in ("ncnn-LICENSE.txt", "monocypher-LICENSE.txt"):
            copy(self, name, os.path.join(self.package_folder, "share", "doc", "tvm_ncnn"), licenses)
        with open(os.path.join(self.build_folder, "tvm_licenses.json"), encoding="utf-8") as f:
            for path in json.load(f):
                dist = os.path.basename(os.path.dirname(os.path.dirname(path))).split("-")[0]
                shutil.copy(path, os.path.join(licenses, f"{dist}-{os.path.basename(path)}"))
        self._package_openmp(licenses)

    def _package_openmp(self, licenses):
        """lib/libgomp.so.1: the OpenMP runtime ncnn was linked with, beside libtvm_ncnn_runtime.so (whose
        RUNPATH is $ORIGIN), so that a folder made from the package (Conan's runtime_deploy) runs on a system
        without libgomp1 (minimal Raspberry Pi OS images, containers); a system's own libgomp.so.1, already
        loaded, is used instead (same soname). Exactly the file the build linked (CMake's FindOpenMP result),
        not one looked up again."""
        cache = load(self, os.path.join(self.build_folder, "CMakeCache.txt"))
        m = re.search(r"^OpenMP_gomp_LIBRARY:FILEPATH=(.+)$", cache, re.M)
        if not m:  # built without GCC's OpenMP: nothing to ship
            return
        real = os.path.realpath(m.group(1).strip())
        if not os.path.isfile(real):
            raise ConanException(f"libgomp: {m.group(1).strip()} (from the build's CMakeCache.txt) is missing")
        shutil.copy(real, os.path.join(self.package_folder, "lib", "libgomp.so.1"))
        # GCC's runtime library exception allows shipping it; keep its copyright with the other licenses
        # (Debian names the file by the package that owns the library).
        proc = subprocess.run(["dpkg-query", "-S", real], capture_output=True, text=True, check=False) \
            if shutil.which("dpkg-query") else None
        owner = proc.stdout.split(":")[0].strip() if proc and proc.returncode == 0 else ""
        copyright_file = os.path.join("/usr/share/doc", owner, "copyright")
        if owner and os.path.isfile(copyright_file):
            shutil.copy(copyright_file, os.path.join(licenses, "libgomp-copyright.txt"))

    # ---------------------------------------------------------------------------------------------
    def package_info(self):
        # find_package(tvm_ncnn) -> tvm_ncnn::runtime (+ tvm_ncnn::tvm_ffi, tvm_ncnn::tvm_runtime), the
        # same targets as lib/cmake/tvm_ncnn/tvm_ncnnConfig.cmake defines for plain CMake consumers.
        self.cpp_info.set_property("cmake_file_name", "tvm_ncnn")
        self.cpp_info.set_property("cmake_target_name", "tvm_ncnn::tvm_ncnn")

        ffi = self.cpp_info.components["tvm_ffi"]
        ffi.set_property("cmake_target_name", "tvm_ncnn::tvm_ffi")
        ffi.libs = ["tvm_ffi"]
        ffi.system_libs = ["dl", "pthread", "m"]

        vm = self.cpp_info.components["tvm_runtime"]
        vm.set_property("cmake_target_name", "tvm_ncnn::tvm_runtime")
        vm.libs = ["tvm_runtime"]
        vm.includedirs = []
        vm.requires = ["tvm_ffi"]

        rt = self.cpp_info.components["runtime"]
        rt.set_property("cmake_target_name", "tvm_ncnn::runtime")
        # libtvm_runtime.so is linked too: the linker then resolves libtvm_ncnn_runtime.so's dependency
        # on it from the command line (a cross linker does not follow the library's $ORIGIN RUNPATH).
        rt.requires = ["tvm_ffi", "tvm_runtime"]
        rt.defines = ["_GLIBCXX_USE_CXX11_ABI=1"]
        # Threads: concurrent Run calls (execution contexts per caller); ncnn's and TVM's thread pools.
        rt.system_libs = ["pthread", "dl", "m"]
        if self.options.shared:
            # OpenMP (libgomp, ncnn's threading) is a dependency of the .so itself.
            rt.libs = ["tvm_ncnn_runtime"]
        else:
            # The archive whole (see the docstring), before the app's objects; libtvm_runtime.so kept
            # even under --as-needed (nothing references it by name: the Relax VM registers itself);
            # OpenMP for ncnn, its one-thread regions through the archive's wrapper (threads/one_thread_regions.cc).
            lib = os.path.join(self.package_folder, "lib")
            rt.libs = []
            whole = ["-Wl,--push-state,--whole-archive", os.path.join(lib, "libtvm_ncnn_runtime.a"),
                     "-Wl,--pop-state", "-Wl,--push-state,--no-as-needed",
                     os.path.join(lib, "libtvm_runtime.so"), "-Wl,--pop-state", "-Wl,--wrap=GOMP_parallel"]
            rt.exelinkflags = whole
            rt.sharedlinkflags = whole
            rt.system_libs = ["gomp"] + rt.system_libs
