"""Conan 2 recipe: the tvm-ncnn C++ runtime for C++ apps (host and cross, e.g. armv8 for Raspberry Pi).

    conan create . -nr -pr:h cmake/conan/host  -pr:b cmake/conan/host     # this machine
    conan create . -nr -pr:h cmake/conan/armv8 -pr:b cmake/conan/host     # Raspberry Pi 4/5 (aarch64)

The package: lib/libtvm_ncnn_runtime.so (ncnn built in, from the pinned PyPI sdist), lib/libtvm_runtime.so
and lib/libtvm_ffi.so (from the apache-tvm / apache-tvm-ffi wheels of exactly the versions the SDK pins in
sdk_python/requirements-dev.txt), include/ (tvm_ncnn/runtime.h, the tvm-ffi headers), bin/deploy_app, and
lib/cmake/tvm_ncnn/ (the same CMake package files as `cmake --install`). Consumers:

    find_package(tvm_ncnn REQUIRED)
    target_link_libraries(app PRIVATE tvm_ncnn::runtime)

Where the inputs come from (nothing from a Conan remote):
  * ncnn: the sdist ncnn==<cmake/ncnn.cmake's pin>, fetched by name from the package index pip is
    configured with and checked against the pinned sha256 (cmake/fetch_sdist.py, cached in
    build/_downloads/ of the checkout), then exported with the recipe's sources: once exported, building
    the package needs no network.
  * TVM runtime libraries for the package's arch, by conf (the profiles in cmake/conan/ set them):
      user.tvm_ncnn:tvm_root   a folder with the unpacked wheels (tvm/, tvm_ffi/, *.dist-info/)
      user.tvm_ncnn:downloads  a download cache (the checkout's build/_downloads): the unpacked wheels
                               are taken from tvm-<arch>-<tvm>-ffi-<ffi>/ there (cmake/build_aarch64.sh's
                               layout), fetched once with pip when missing
      user.tvm_ncnn:python     a Python with the apache-tvm wheel installed (native builds only; default:
                               the Python running Conan)
Options: shared (default True): libtvm_ncnn_runtime.so. shared=False: libtvm_ncnn_runtime.a with ncnn's
objects inside, linked --whole-archive (the ffi registrations of the `ncnn` and `tvm_ncnn_meta` module
loaders are static initializers in objects nothing references by name; a plain link would drop them and
model.so would not load); libtvm_runtime.so and libtvm_ffi.so stay shared (the wheels have nothing else),
and ncnn's symbols become part of the app (the .so hides them), so an app with its own ncnn must use the
shared runtime. fPIC (static only, default True).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

from conan import ConanFile
from conan.errors import ConanException, ConanInvalidConfiguration
from conan.tools.build import cross_building
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load

required_conan_version = ">=2.0"

# Wheel platform tags / build_aarch64.sh folder names per Conan arch.
_WHEEL_ARCH = {"x86_64": "x86_64", "armv8": "aarch64"}
_ELF_MACHINE = {"x86_64": 62, "armv8": 183}  # EM_X86_64, EM_AARCH64


class TvmNcnnConan(ConanFile):
    name = "tvm_ncnn"
    description = ("tvm-ncnn C++ runtime: loads a model.so exported by the tvm-ncnn SDK (ncnn regions + "
                   "TVM-compiled code, Relax VM) and runs it, no Python")
    # The package bundles the TVM runtime libraries (Apache-2.0) and ncnn (BSD-3-Clause); their license
    # texts are in licenses/. (tvm-ncnn itself declares no license yet.)
    license = "Apache-2.0", "BSD-3-Clause"
    topics = ("tvm", "ncnn", "inference", "raspberry-pi")
    package_type = "library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"shared": [True, False], "fPIC": [True, False]}
    default_options = {"shared": True, "fPIC": True}
    test_package_folder = "tests/conan/test_package"
    # The SDK's pins: the package carries exactly the TVM runtime the SDK exports model.so files with.
    exports = "sdk_python/requirements-dev.txt"

    # ---------------------------------------------------------------------------------------------
    def set_version(self):
        text = load(self, os.path.join(self.recipe_folder, "CMakeLists.txt"))
        m = re.search(r"project\(\s*tvm_ncnn\s+VERSION\s+([0-9][0-9.]*)", text)
        if not m:
            raise ConanException("conanfile.py: no `project(tvm_ncnn VERSION x.y.z)` in CMakeLists.txt")
        self.version = m.group(1)

    def _tvm_pins(self):
        """(apache-tvm version, apache-tvm-ffi version) from sdk_python/requirements-dev.txt."""
        text = load(self, os.path.join(self.recipe_folder, "sdk_python", "requirements-dev.txt"))
        pins = dict(re.findall(r"^\s*(apache-tvm(?:-ffi)?)==([^\s#;]+)", text, re.M))
        if "apache-tvm" not in pins or "apache-tvm-ffi" not in pins:
            raise ConanException("sdk_python/requirements-dev.txt pins no apache-tvm==... / apache-tvm-ffi==...")
        return pins["apache-tvm"], pins["apache-tvm-ffi"]

    @staticmethod
    def _ncnn_pin(cmake_dir):
        """(version, sha256) of the ncnn sdist, read from cmake/ncnn.cmake (the one place they are set)."""
        with open(os.path.join(cmake_dir, "ncnn.cmake"), encoding="utf-8") as f:
            text = f.read()
        ver = re.search(r'set\(TVM_NCNN_NCNN_VERSION\s+"([^"]+)"\)', text)
        sha = re.search(r'set\(TVM_NCNN_NCNN_SHA256\s+"([0-9a-fA-F]{64})"\)', text)
        if not ver or not sha:
            raise ConanException("cmake/ncnn.cmake: cannot read TVM_NCNN_NCNN_VERSION / TVM_NCNN_NCNN_SHA256")
        return ver.group(1), sha.group(1).lower()

    @staticmethod
    def _tool_python():
        """A Python for helper scripts: the one running Conan, unless Conan is a frozen executable."""
        if os.path.basename(sys.executable).startswith("python"):
            return sys.executable
        return shutil.which("python3") or "python3"

    def export_sources(self):
        src, dst = self.recipe_folder, self.export_sources_folder
        for pattern in ("CMakeLists.txt", "cmake/tvm.cmake", "cmake/ncnn.cmake", "cmake/fetch_sdist.py",
                        "cmake/tvm_ncnnConfig.cmake.in", "runtime/CMakeLists.txt", "runtime/include/*",
                        "runtime/src/*", "deploy_app/CMakeLists.txt", "deploy_app/*.cc", "deploy_app/*.h"):
            copy(self, pattern, src, dst)
        # The ncnn sdist: by package name from pip's index, sha256-checked, cached in build/_downloads
        # (the cache cmake/ncnn.cmake uses too); never committed, carried here with the sources.
        version, sha256 = self._ncnn_pin(os.path.join(src, "cmake"))
        cache = os.path.join(src, "build", "_downloads")
        proc = subprocess.run([self._tool_python(), os.path.join(src, "cmake", "fetch_sdist.py"),
                               "--name", "ncnn", "--version", version, "--sha256", sha256, "--dest", cache],
                              capture_output=True, text=True, check=False)
        sdist = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or not os.path.isfile(sdist):
            raise ConanException(f"could not fetch the ncnn {version} sdist (sha256 {sha256}):\n{proc.stderr}"
                                 "Download ncnn-" + version + ".tar.gz yourself into " + cache)
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
    def _check_version(self, what, found, pinned, where):
        if found != pinned:
            raise ConanException(f"{where} has {what} {found}, but the SDK pins {pinned} "
                                 "(sdk_python/requirements-dev.txt): a model.so runs only with the TVM runtime "
                                 "of the version that exported it")

    def _tvm_from_python(self, python):
        probe = ("import importlib.metadata as md, importlib.util as u, json\n"
                 "loc = lambda m: list(u.find_spec(m).submodule_search_locations)[0]\n"
                 "print(json.dumps({'tvm': loc('tvm'), 'ffi': loc('tvm_ffi'), "
                 "'tvm_version': md.version('apache-tvm'), 'ffi_version': md.version('apache-tvm-ffi')}))")
        proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ConanException(f"{python} has no apache-tvm / apache-tvm-ffi wheel ({proc.stderr.strip()}); "
                                 "set -c user.tvm_ncnn:python=<the SDK's Python> (cmake/conan/host does)")
        return json.loads(proc.stdout)

    def _unpacked_wheels(self, downloads, tvm_version, ffi_version):
        """<downloads>/tvm-<arch>-<tvm>-ffi-<ffi>/: the unpacked wheels (cmake/build_aarch64.sh's layout);
        made here with pip when missing."""
        arch = _WHEEL_ARCH[str(self.settings.arch)]
        root = os.path.join(downloads, f"tvm-{arch}-{tvm_version}-ffi-{ffi_version}")
        if os.path.isfile(os.path.join(root, ".complete")):
            return root
        python = self.conf.get("user.tvm_ncnn:python") or self._tool_python()
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        pyver = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, check=True).stdout.strip()
        self.output.info(f"fetching the {arch} wheels apache-tvm=={tvm_version} apache-tvm-ffi=={ffi_version}")
        proc = subprocess.run([python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                               "--no-deps", "--only-binary", ":all:", "--platform", f"manylinux_2_28_{arch}",
                               "--python-version", pyver, f"apache-tvm=={tvm_version}",
                               f"apache-tvm-ffi=={ffi_version}", "-d", tmp],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ConanException(f"pip could not download the {arch} TVM wheels:\n{proc.stderr}")
        keep = re.compile(r"^(tvm/lib/libtvm_runtime\.so|tvm_ffi/lib/libtvm_ffi\.so|tvm_ffi/include/.*"
                          r"|apache_tvm(_ffi)?-[^/]+\.dist-info/(METADATA|licenses/.*))$")
        for wheel in glob.glob(os.path.join(tmp, "*.whl")):
            with zipfile.ZipFile(wheel) as z:
                for name in z.namelist():
                    if keep.match(name) and not name.endswith("/"):
                        z.extract(name, os.path.join(tmp, "root"))
            os.unlink(wheel)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(os.path.join(tmp, "root"), root)
        shutil.rmtree(tmp)
        open(os.path.join(root, ".complete"), "w").close()
        return root

    def _tvm_from_root(self, root):
        def version(dist):
            meta = glob.glob(os.path.join(root, f"{dist}-*.dist-info", "METADATA"))
            text = load(self, meta[0]) if meta else ""
            m = re.search(r"^Version:\s*(\S+)", text, re.M)
            return m.group(1) if m else ""
        info = {"tvm": os.path.join(root, "tvm"), "ffi": os.path.join(root, "tvm_ffi"),
                "tvm_version": version("apache_tvm"), "ffi_version": version("apache_tvm_ffi")}
        lib = os.path.join(info["tvm"], "lib", "libtvm_runtime.so")
        if not os.path.isfile(lib):
            raise ConanException(f"{root}: no tvm/lib/libtvm_runtime.so (not unpacked TVM wheels)")
        with open(lib, "rb") as f:
            head = f.read(20)
        if int.from_bytes(head[18:20], "little") != _ELF_MACHINE[str(self.settings.arch)]:
            raise ConanException(f"{lib} is not a library for {self.settings.arch}")
        return info

    def _tvm(self):
        """Where the TVM runtime libraries for this package's arch are: {'tvm', 'ffi', versions}."""
        tvm_version, ffi_version = self._tvm_pins()
        root = self.conf.get("user.tvm_ncnn:tvm_root")
        downloads = self.conf.get("user.tvm_ncnn:downloads")
        if root:
            info, where = self._tvm_from_root(root), root
        elif downloads:
            root = self._unpacked_wheels(downloads, tvm_version, ffi_version)
            info, where = self._tvm_from_root(root), root
        elif cross_building(self):
            raise ConanException("cross build: set -c user.tvm_ncnn:downloads=<checkout>/build/_downloads "
                                 "(cmake/conan/armv8 does) or -c user.tvm_ncnn:tvm_root=<unpacked "
                                 f"{self.settings.arch} wheels>")
        else:
            python = self.conf.get("user.tvm_ncnn:python") or self._tool_python()
            info, where = self._tvm_from_python(python), python
        self._check_version("apache-tvm", info["tvm_version"], tvm_version, where)
        self._check_version("apache-tvm-ffi", info["ffi_version"], ffi_version, where)
        return info

    def generate(self):
        info = self._tvm()
        tc = CMakeToolchain(self)
        if str(self.settings.arch) == "x86_64":
            # -m64 is gcc's default there; leaving it out keeps the compile lines identical to the
            # plain CMake build's, so ccache reuses its objects (ncnn is most of the build time).
            tc.blocks.remove("arch_flags")
        version, _ = self._ncnn_pin(os.path.join(self.source_folder, "cmake"))
        cv = tc.cache_variables
        cv["TVM_NCNN_BUILD_TESTS"] = False
        cv["TVM_NCNN_SHARED"] = bool(self.options.shared)
        cv["TVM_NCNN_INSTALL"] = True
        cv["NCNN_SDIST"] = os.path.join(self.source_folder, "_downloads", f"ncnn-{version}.tar.gz")
        cv["TVM_NCNN_DOWNLOAD_DIR"] = os.path.join(self.build_folder, "_downloads")
        root = os.path.dirname(info["tvm"])
        if os.path.dirname(info["ffi"]) == root and glob.glob(os.path.join(root, "apache_tvm-*.dist-info")):
            cv["TVM_NCNN_TVM_ROOT"] = root  # unpacked wheels, or a site-packages folder
        else:
            raise ConanException(f"tvm ({info['tvm']}) and tvm_ffi ({info['ffi']}) are not in one folder")
        tc.generate()
        # For package(): the wheels' license files.
        licenses = glob.glob(os.path.join(root, "apache_tvm*.dist-info", "licenses", "*"))
        with open(os.path.join(self.build_folder, "tvm_licenses.json"), "w", encoding="utf-8") as f:
            json.dump(licenses, f)

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        CMake(self).install()
        licenses = os.path.join(self.package_folder, "licenses")
        copy(self, "ncnn-LICENSE.txt", os.path.join(self.package_folder, "share", "doc", "tvm_ncnn"), licenses)
        with open(os.path.join(self.build_folder, "tvm_licenses.json"), encoding="utf-8") as f:
            for path in json.load(f):
                dist = os.path.basename(os.path.dirname(os.path.dirname(path))).split("-")[0]
                shutil.copy(path, os.path.join(licenses, f"{dist}-{os.path.basename(path)}"))

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
        # Threads: the public API serializes Run calls; ncnn's and TVM's thread pools.
        rt.system_libs = ["pthread", "dl", "m"]
        if self.options.shared:
            # OpenMP (libgomp, ncnn's threading) is a dependency of the .so itself.
            rt.libs = ["tvm_ncnn_runtime"]
        else:
            # The archive whole (see the docstring), before the app's objects; libtvm_runtime.so kept
            # even under --as-needed (nothing references it by name: the Relax VM registers itself);
            # OpenMP for ncnn.
            lib = os.path.join(self.package_folder, "lib")
            rt.libs = []
            whole = ["-Wl,--push-state,--whole-archive", os.path.join(lib, "libtvm_ncnn_runtime.a"),
                     "-Wl,--pop-state", "-Wl,--push-state,--no-as-needed",
                     os.path.join(lib, "libtvm_runtime.so"), "-Wl,--pop-state"]
            rt.exelinkflags = whole
            rt.sharedlinkflags = whole
            rt.system_libs = ["gomp"] + rt.system_libs
