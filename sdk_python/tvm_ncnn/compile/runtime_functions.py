"""The global functions a model.so calls by name, against those the tvm-ncnn runtime has: export refuses a model
that would fail for want of one at run time, naming the op and the function.

A compiled model calls global functions by name in two places, and both are looked up only when the model runs:
- the Relax VM's packed functions (`vm.builtin.*`, TVM's `relax.run.*` for unique/nonzero, ...), resolved when the
  VM is initialised, from the modules imported into model.so or the global registry;
- the TIR's `call_packed`s: topi lowers sort, argsort and top-k to `tvm.contrib.sort.*` calls, which the compiled
  code looks up in the global registry on its first run (the handle `@.tvm_func.<name>` in its LLVM IR).

What the runtime has is asked of the runtime library itself, in a child process that loads it alone (no `import
tvm`, whose compiler registers hundreds of functions deploy_app does not have): its libtvm_runtime.so plus what
runtime/src registers (runtime/src/tvm_extern/). The aarch64 bundle carries the same runtime sources and the
aarch64 wheel of the same TVM version, so the host's answer stands for it too.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys

from ..errors import ModelError

# runtime/src/tvm_extern/registry_names.cc; through ctypes alone (importing tvm_ffi imports torch: over a second)
_LIST_NAMES = ("import ctypes, sys; f = ctypes.CDLL(sys.argv[1]).tvm_ncnn_global_function_names; "
               "f.restype = ctypes.c_char_p; sys.stdout.write(f().decode())")
_VM_PACKED = re.compile(r"^@(\S+) packed_func;", re.M)           # VMExecutable.as_text(): its function table
_TIR_HANDLE = re.compile(r"@\.tvm_func\.([\w.$-]+)")           # codegen's cached handle of one packed function
_DEFINE = re.compile(r"^define [^@]*@\"?([^\"(]+)\"?\(")


@functools.lru_cache(maxsize=None)
def provided(library: str) -> frozenset[str]:
    """Every global function name a process that loads `library` (the runtime) alone has."""
    try:
        proc = subprocess.run([sys.executable, "-c", _LIST_NAMES, library], capture_output=True, text=True,
                              timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ModelError(f"cannot list the functions of {library}: {err}") from err
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise ModelError(f"cannot list the functions of {library}: {lines[-1]}")
    return frozenset(proc.stdout.split())


def required(executable) -> dict[str, str]:
    """{function name: who calls it ("TVM's code for topk", "the Relax VM")} for every global function the
    executable looks up by name and none of its own modules implements."""
    imports = list(executable.mod.imports)
    needed: dict[str, str] = {}
    for name in _VM_PACKED.findall(executable.as_text()):
        if not any(m.implements_function(name) for m in imports):
            needed.setdefault(name, "the Relax VM")
    for module in imports:
        if module.kind != "llvm":
            continue
        function = "?"
        for line in module.inspect_source("ll").splitlines():
            defined = _DEFINE.match(line)
            if defined:
                function = defined.group(1)
            elif function.startswith("__tvm_"):  # the handle's own lookup code, not a user of it
                continue
            elif not line.startswith("@"):  # a use inside a function, not the handle's own definition
                for name in _TIR_HANDLE.findall(line):
                    needed.setdefault(name, f"TVM's code for {_op_name(function)}")
    return needed


def check(executable, source: str, runtime: str) -> None:
    """Refuse (ModelError, one line) an executable that calls a function the runtime library does not have."""
    have = provided(runtime)
    missing = {name: op for name, op in required(executable).items() if name not in have}
    if missing:
        name, caller = sorted(missing.items())[0]
        more = f" (and {len(missing) - 1} more: {', '.join(sorted(missing)[1:])})" if len(missing) > 1 else ""
        raise ModelError(f"{source}: {caller} calls {name}, which the tvm-ncnn runtime does not have, "
                         f"so the model could not run{more}")


def _op_name(function: str) -> str:
    """The TIR function a call sits in, as the op it came from: host code of `topk` is `topk` or
    `topk_compute_`."""
    return re.sub(r"_compute_$", "", function)
