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

from ..errors import ModelError

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


# x86 features TVM's code may use, checked against what this machine reports (/proc/cpuinfo, "_" removed)
_X86_VECTOR_FEATURES = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd",
                        "avx512vnni", "avx512bf16", "avx512fp16", "avxvnni")


def _host_llvm() -> dict:
    """The host's LLVM target, its CPU named: {"kind": "llvm"} alone compiles for generic x86-64 (SSE2 only), so
    TVM's vectorized loops would not use AVX2/AVX-512. A feature the CPU model has but this machine does not
    report (a hypervisor can hide AVX-512) is turned off."""
    from tvm.target import codegen

    try:
        cpu = codegen.llvm_get_system_cpu()
        if not cpu or cpu == "generic":
            return {"kind": "llvm"}
        llvm = {"kind": "llvm", "mcpu": cpu}
        if platform.machine() in ("x86_64", "AMD64"):
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
            if flags:
                reported = {flag.replace("_", "") for flag in flags}
                model = codegen.llvm_get_cpu_features(tvm.target.Target(llvm))
                hidden = [f for f in _X86_VECTOR_FEATURES if f in model and f not in reported]
                if hidden:
                    llvm["mattr"] = ["-" + f for f in hidden]
        return llvm
    except Exception:  # noqa: BLE001 -- an LLVM without host detection: TVM's generic default still works
        return {"kind": "llvm"}


TARGETS = {
    "host": DeviceTarget("host", f"{platform.machine()}-linux-gnu", _host_llvm(), cross=False,
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
