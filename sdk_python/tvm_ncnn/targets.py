"""Where a model.so runs: the TVM target to compile for and the compiler that links the library."""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass

import tvm

from .errors import ModelError

CROSS_PREFIX = "aarch64-linux-gnu-"


@dataclass(frozen=True)
class DeviceTarget:
    name: str
    triple: str
    llvm: dict
    cross: bool

    def tvm_target(self) -> tvm.target.Target:
        return tvm.target.Target(self.llvm)

    def linker(self):
        """None for the host's default compiler, else a cross-compiling fcompile for export_library."""
        if not self.cross:
            return None
        compiler = CROSS_PREFIX + "g++"
        if shutil.which(compiler) is None:
            raise ModelError(f"target {self.name} needs the aarch64 cross compiler {compiler}: "
                             "install the Debian package g++-aarch64-linux-gnu")
        from tvm.support import cc

        return cc.cross_compiler(compiler)


def _aarch64(name: str, cpu: str | None) -> DeviceTarget:
    llvm = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
    if cpu:
        llvm["mcpu"] = cpu
    return DeviceTarget(name, "aarch64-linux-gnu", llvm, cross=platform.machine() != "aarch64")


TARGETS = {
    "host": DeviceTarget("host", f"{platform.machine()}-linux-gnu", {"kind": "llvm"}, cross=False),
    "rpi4": _aarch64("rpi4", "cortex-a72"),   # Raspberry Pi 4
    "rpi5": _aarch64("rpi5", "cortex-a76"),   # Raspberry Pi 5
    "aarch64": _aarch64("aarch64", None),     # any 64-bit ARM board with NEON
}


def get_target(name: str) -> DeviceTarget:
    if name not in TARGETS:
        raise ModelError(f"unknown target '{name}': choose one of {', '.join(TARGETS)}")
    return TARGETS[name]
