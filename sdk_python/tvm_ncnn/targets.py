"""Where a model.so runs: the TVM target to compile for and the compiler that links the library.

`host` is this machine. `rpi4` / `rpi5` / `aarch64` are 64-bit ARM Linux: TVM's code is compiled for the
board's CPU (Cortex-A72 / Cortex-A76 / any armv8-a with NEON) and, on a machine that is not aarch64 itself,
linked with the cross compiler of the Debian package g++-aarch64-linux-gnu (or the one named by the
TVM_NCNN_AARCH64_CXX environment variable). A model.so for rpi5 may use armv8.2 instructions a Pi 4 lacks;
`aarch64` runs on both.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass

import tvm

from .errors import ModelError

AARCH64_TRIPLE = "aarch64-linux-gnu"
AARCH64_CXX_ENV = "TVM_NCNN_AARCH64_CXX"
AARCH64_CXX_DEFAULT = AARCH64_TRIPLE + "-g++"
AARCH64_CXX_PACKAGE = "g++-aarch64-linux-gnu"


@dataclass(frozen=True)
class DeviceTarget:
    name: str
    triple: str
    llvm: dict
    cross: bool
    description: str = ""

    def tvm_target(self) -> tvm.target.Target:
        return tvm.target.Target(dict(self.llvm))

    def compiler(self) -> str | None:
        """The cross compiler's command, or None for the host's default compiler."""
        if not self.cross:
            return None
        return os.environ.get(AARCH64_CXX_ENV) or AARCH64_CXX_DEFAULT

    def check_toolchain(self) -> None:
        """Raise ModelError naming the package to install when the cross compiler is missing."""
        compiler = self.compiler()
        if compiler is not None and shutil.which(compiler) is None:
            hint = (f"install the Debian package {AARCH64_CXX_PACKAGE} (apt-get install {AARCH64_CXX_PACKAGE})"
                    if compiler == AARCH64_CXX_DEFAULT else f"check the {AARCH64_CXX_ENV} environment variable")
            raise ModelError(f"target {self.name} needs the {self.triple} cross compiler {compiler}, "
                             f"which is not on PATH: {hint}")

    def linker(self):
        """None for the host's default compiler, else a cross-compiling fcompile for export_library."""
        compiler = self.compiler()
        if compiler is None:
            return None
        self.check_toolchain()
        from tvm.support import cc

        triple = self.triple
        # The triple must be given: cross_compiler() otherwise inherits create_shared's, which asks the
        # *host* compiler, and when TVM compiled nothing itself (every op in ncnn) the module blob object
        # (devc.o) is then emitted for the host and the link fails.
        return cc.cross_compiler(compiler, get_target_triple=lambda: triple)


def _aarch64(name: str, cpu: str | None, description: str) -> DeviceTarget:
    llvm = {"kind": "llvm", "mtriple": AARCH64_TRIPLE, "mattr": ["+neon"]}
    if cpu:
        llvm["mcpu"] = cpu
    return DeviceTarget(name, AARCH64_TRIPLE, llvm, cross=platform.machine() not in ("aarch64", "arm64"),
                        description=description)


TARGETS = {
    "host": DeviceTarget("host", f"{platform.machine()}-linux-gnu", {"kind": "llvm"}, cross=False,
                         description="this machine"),
    "rpi4": _aarch64("rpi4", "cortex-a72", "Raspberry Pi 4 (Cortex-A72), 64-bit OS"),
    "rpi5": _aarch64("rpi5", "cortex-a76", "Raspberry Pi 5 (Cortex-A76), 64-bit OS"),
    "aarch64": _aarch64("aarch64", None, "any 64-bit ARM Linux board (armv8-a with NEON)"),
}


def get_target(name: str, check_toolchain: bool = True) -> DeviceTarget:
    """The target called `name`. With check_toolchain, a missing cross compiler fails here, before the slow
    import and compile steps."""
    if name not in TARGETS:
        raise ModelError(f"unknown target '{name}': choose one of {', '.join(TARGETS)}")
    target = TARGETS[name]
    if check_toolchain:
        target.check_toolchain()
    return target
