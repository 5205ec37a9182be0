"""Is a deploy folder (the app + the libraries Conan's runtime_deploy and `cmake --install` put beside it)
enough to run the app on a Raspberry Pi that has nothing but its C and C++ runtime?

    check_deploy.py FOLDER --app hello_tvm_ncnn --model MODEL_DIR
                    [--sysroot /usr/aarch64-linux-gnu] [--emulator "qemu-aarch64 -cpu cortex-a72"]

MODEL_DIR holds model.so, input.npy and expected.npy (tiny_model.py make). Run with the SDK's Python.

Why each step: the app built by `conan install` + CMake has a RUNPATH into the build machine's Conan cache.
Under qemu-aarch64 that goes unnoticed: qemu looks a path up in its -L prefix and then on the host, where the
cache is. So the check is made both ways:
  1. FOLDER is copied to a new temporary folder (nothing may depend on where it was made), and every ELF file
     in it must have only $ORIGIN-relative RUNPATH/RPATH entries, and every NEEDED library must be found in
     the folder through them or be one of the bare system's libraries (BARE below).
  2. The copy runs under the emulator with a sysroot made of the BARE libraries alone (no libgomp, no
     tvm_ncnn), with the guest loader's LD_DEBUG=libs: every library it loads must come from the copy, from
     the model's folder (model.so) or from that sysroot. Its output must match the numpy reference.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# What every Raspberry Pi OS (and any aarch64 glibc system) has: glibc's loader and libraries, and GCC's C++
# runtime (Debian's essential libc6, libstdc++6, libgcc-s1). libgomp1 is not among them.
BARE = ("ld-linux-aarch64.so.1", "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
        "libstdc++.so.6", "libgcc_s.so.1")


def fail(msg: str) -> None:
    sys.exit(f"check_deploy: FAIL: {msg}")


def is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def dynamic(path: str) -> tuple[list[str], list[str]]:
    """(NEEDED names, RUNPATH and RPATH entries) of an ELF file, from readelf -d."""
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", out)
    paths = []
    for entry in re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*?)\]", out):
        paths += [p for p in entry.split(":") if p]
    return needed, paths


def check_static(folder: str) -> list[str]:
    """Step 1 on the copied folder; returns the ELF files' names."""
    elves, problems = [], []
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) or not is_elf(path):
                continue
            elves.append(os.path.relpath(path, folder))
            needed, paths = dynamic(path)
            for p in paths:
                if not p.startswith("$ORIGIN"):
                    problems.append(f"{os.path.relpath(path, folder)}: RUNPATH entry {p} is not relative to "
                                    "$ORIGIN (on the Pi it names a folder of the build machine)")
            dirs = [os.path.normpath(p.replace("$ORIGIN", root, 1)) for p in paths if p.startswith("$ORIGIN")]
            for lib in needed:
                if lib in BARE:
                    continue
                if not any(os.path.exists(os.path.join(d, lib)) for d in dirs):
                    problems.append(f"{os.path.relpath(path, folder)}: needs {lib}, which is neither in the "
                                    f"folder through its RUNPATH ({':'.join(paths) or 'none'}) nor a library "
                                    "every Pi has")
    if problems:
        fail("\n  ".join(["the folder is not self-contained:"] + problems))
    return elves


def bare_sysroot(src: str, dest: str) -> None:
    """dest/lib with copies of the BARE libraries from the cross toolchain's sysroot, nothing else."""
    os.makedirs(os.path.join(dest, "lib"))
    for name in BARE:
        path = os.path.join(src, "lib", name)
        if not os.path.exists(path):
            fail(f"{path} is missing (apt-get install g++-aarch64-linux-gnu)")
        shutil.copy(os.path.realpath(path), os.path.join(dest, "lib", name))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--app", required=True, help="the app's file name in the folder")
    ap.add_argument("--model", required=True, help="folder with model.so, input.npy, expected.npy")
    ap.add_argument("--sysroot", default="/usr/aarch64-linux-gnu")
    ap.add_argument("--emulator", default="qemu-aarch64 -cpu cortex-a72")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="tvm_ncnn_pi_") as tmp:
        copy = os.path.join(tmp, "app")
        shutil.copytree(a.folder, copy, symlinks=True)
        app = os.path.join(copy, a.app)
        if not os.path.isfile(app):
            fail(f"no {a.app} in {a.folder} (`cmake --install` puts it there when the app's CMakeLists.txt "
                 "has an install() rule)")
        elves = check_static(copy)
        print(f"check_deploy: {len(elves)} ELF files, RUNPATHs relative to $ORIGIN, every library found: "
              + " ".join(sorted(elves)))

        sysroot = os.path.join(tmp, "sysroot")
        bare_sysroot(a.sysroot, sysroot)
        model = os.path.join(tmp, "model")
        shutil.copytree(a.model, model)
        output = os.path.join(model, "output.npy")
        emulator = shlex.split(a.emulator)
        cmd = [emulator[0], "-L", sysroot, *emulator[1:], "-E", "LD_DEBUG=libs", "-U", "LD_LIBRARY_PATH",
               app, os.path.join(model, "model.so"), os.path.join(model, "input.npy"), output]
        env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "QEMU_LD_PREFIX")}
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env, check=False)
        loaded = re.findall(r"calling init: (\S+)", proc.stderr)
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if "calling" not in line and ": " in line
                      and not re.match(r"\s*\d+:\s", line)]
            fail(f"the app failed under {shlex.join(emulator)} with the bare sysroot (exit {proc.returncode}):\n"
                 + "\n".join(errors[-10:] or proc.stderr.splitlines()[-10:]))
        stray = [p for p in loaded if not (p.startswith(copy + "/") or p.startswith(model + "/")
                                             or (os.path.dirname(p) == "/lib" and os.path.basename(p) in BARE))]
        if stray:
            fail("the app loaded libraries from outside the folder and the bare sysroot: " + " ".join(stray))
        print(proc.stdout.strip())
        print("check_deploy: loaded " + " ".join(p.replace(tmp, "<tmp>") for p in loaded))
        subprocess.run([sys.executable, os.path.join(HERE, "test_package", "tiny_model.py"), "check", output,
                        os.path.join(model, "expected.npy")], check=True)
    print("check_deploy: ok")


if __name__ == "__main__":
    main()
