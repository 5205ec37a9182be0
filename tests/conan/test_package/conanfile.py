"""Test package of the tvm_ncnn recipe: a C++ app (CMakeLists.txt + main.cpp, the README's example) built
against the package with find_package(tvm_ncnn), run on a model.so the SDK exports during the build, its
output checked against a numpy reference (tiny_model.py).

Confs (cmake/conan/host and cmake/conan/armv8 set them):
  user.tvm_ncnn:python    the Python with the tvm-ncnn SDK (default: the Python running Conan)
  user.tvm_ncnn:emulator  how to run the app when cross-building, e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu";
                          without it (or when it is not installed) a cross build only builds
"""
import os
import shlex
import shutil
import sys

from conan import ConanFile
from conan.tools.build import can_run, cross_building
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout

# The SDK's export target for the arch the app runs on.
_EXPORT_TARGET = {"x86_64": "host", "armv8": "aarch64"}


class TvmNcnnTestPackage(ConanFile):
    settings = "os", "arch", "compiler", "build_type"
    generators = "CMakeDeps"
    test_type = "explicit"

    def requirements(self):
        self.requires(self.tested_reference_str)

    def layout(self):
        cmake_layout(self)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.user_presets_path = False  # no CMakeUserPresets.json in the source folder
        tc.generate()

    def _python(self):
        return self.conf.get("user.tvm_ncnn:python") or sys.executable

    def _script(self):
        return os.path.join(self.source_folder, "tiny_model.py")

    def _model_dir(self):
        return os.path.join(self.build_folder, "model")

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()
        # model.so (+ input.npy and the numpy reference) from the SDK, for the arch the app runs on.
        arch = str(self.settings.arch)
        target = _EXPORT_TARGET.get(arch)
        if target is None:
            self.output.warning(f"no SDK export target for arch {arch}: the test only builds")
            return
        args = [self._python(), self._script(), "make", self._model_dir(), "--target", target]
        libdir = self.dependencies["tvm_ncnn"].cpp_info.components["runtime"].libdirs[0]
        lib = os.path.join(libdir, "libtvm_ncnn_runtime.so")
        if not cross_building(self) and os.path.isfile(lib):
            # Export with the package's own runtime library: one more check of the package. (Otherwise
            # the SDK uses the checkout's build/host, or $TVM_NCNN_RUNTIME_LIB.)
            args += ["--runtime-lib", lib]
        self.run(shlex.join(args))

    def test(self):
        exe = os.path.join(self.cpp.build.bindir, "hello_tvm_ncnn")
        model = self._model_dir()
        if not os.path.isfile(os.path.join(model, "model.so")):
            self.output.warning("no model.so was exported: not running the app")
            return
        run = [exe, os.path.join(model, "model.so"), os.path.join(model, "input.npy"),
               os.path.join(model, "output.npy")]
        if not can_run(self):
            emulator = shlex.split(self.conf.get("user.tvm_ncnn:emulator") or "")
            if not emulator or not shutil.which(emulator[0]):
                self.output.warning(f"cross build for {self.settings.arch} and no emulator "
                                    "(conf user.tvm_ncnn:emulator): built, not run")
                return
            run = emulator + run
        self.run(shlex.join(run), env="conanrun")
        self.run(shlex.join([self._python(), self._script(), "check", os.path.join(model, "output.npy"),
                             os.path.join(model, "expected.npy")]))
