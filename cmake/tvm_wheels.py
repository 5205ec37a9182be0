#!/usr/bin/env python3
"""The TVM runtime libraries a build links and ships: libtvm_runtime.so and libtvm_ffi.so (+ the tvm-ffi headers),
taken from the apache-tvm / apache-tvm-ffi wheels. The one place that fetches them for an architecture and checks
them; cmake/build_aarch64.sh and the Conan recipe both ask it.

    tvm_wheels.py fetch --arch aarch64 --dest build/_downloads [--pinned] [--python-version 3.11]
        the wheels for that architecture, fetched once with `pip download` and unpacked (only what a device
        build needs) into <dest>/tvm-<arch>-<tvm>-ffi-<ffi>/; versions: those installed in the Python running
        this script (what exports the models), else the SDK's pins; --pinned: the pins
    tvm_wheels.py describe --root DIR [--arch aarch64]
        a folder holding unpacked wheels (tvm/, tvm_ffi/, *.dist-info/), e.g. a site-packages
    tvm_wheels.py describe --installed
        the wheels installed in the Python running this script

Prints what it found as JSON: root (the folder with tvm/ and tvm_ffi/), tvm_version, ffi_version, arch (read
from libtvm_runtime.so's ELF header), licenses (the wheels' license files), pinned (the SDK's pins). --shell
prints TVM_ROOT=, TVM_VERSION=, FFI_VERSION= lines for a shell's eval instead. --require-pinned fails unless
the versions are the pinned ones: a model.so runs only with the TVM runtime of the version that exported it.
Errors: one line on stderr, exit status 1.
"""
import argparse
import glob
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile

PINS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk_python", "requirements-dev.txt")
DISTS = ("apache-tvm", "apache-tvm-ffi")
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}  # e_machine: EM_X86_64, EM_AARCH64
# What a device build needs from the wheels (the apache-tvm wheel is ~95 MB, mostly the compiler).
KEEP = re.compile(r"^(tvm/lib/libtvm_runtime\.so|tvm_ffi/lib/libtvm_ffi\.so|tvm_ffi/include/.*"
                  r"|apache_tvm(_ffi)?-[^/]+\.dist-info/(METADATA|licenses/.*))$")
LIBS = ("tvm/lib/libtvm_runtime.so", "tvm_ffi/lib/libtvm_ffi.so")


class Refused(Exception):
    """What is wrong, in one line."""


def pinned_versions():
    """{dist: version} as sdk_python/requirements-dev.txt pins them."""
    with open(PINS_FILE, encoding="utf-8") as f:
        pins = dict(re.findall(r"^\s*(apache-tvm(?:-ffi)?)==([^\s#;]+)", f.read(), re.M))
    missing = [d for d in DISTS if d not in pins]
    if missing:
        raise Refused(f"{os.path.normpath(PINS_FILE)} pins no {', '.join(missing)}")
    return pins


def installed_versions():
    """{dist: version} installed in this Python; {} when either is missing."""
    try:
        return {d: importlib.metadata.version(d) for d in DISTS}
    except importlib.metadata.PackageNotFoundError:
        return {}


def elf_arch(path):
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        raise Refused(f"{path} is not an ELF library")
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little"), "unknown")


def dist_version(root, dist):
    """Version: from <root>/<dist with _>-*.dist-info/METADATA."""
    for meta in glob.glob(os.path.join(root, dist.replace("-", "_") + "-*.dist-info", "METADATA")):
        with open(meta, encoding="utf-8") as f:
            found = re.search(r"^Version:\s*(\S+)", f.read(), re.M)
        if found:
            return found.group(1)
    raise Refused(f"{root} has no {dist} dist-info (not unpacked {dist} wheels)")


def describe(root, arch=None):
    """The description of a folder holding tvm/ and tvm_ffi/ (checked: both libraries, the headers, the arch)."""
    for part in LIBS + ("tvm_ffi/include/tvm/ffi/extra/module.h",):
        if not os.path.isfile(os.path.join(root, part)):
            raise Refused(f"{root}: no {part} (not complete apache-tvm / apache-tvm-ffi wheels)")
    found = {lib: elf_arch(os.path.join(root, lib)) for lib in LIBS}
    if len(set(found.values())) != 1 or (arch and found[LIBS[0]] != arch):
        raise Refused(f"{root}: the libraries are for {', '.join(sorted(set(found.values())))}, "
                      f"not {arch or 'one architecture'}")
    return {"root": os.path.abspath(root), "tvm_version": dist_version(root, "apache-tvm"),
            "ffi_version": dist_version(root, "apache-tvm-ffi"), "arch": found[LIBS[0]],
            "licenses": sorted(glob.glob(os.path.join(root, "apache_tvm*.dist-info", "licenses", "*")))}


def installed_root():
    """The folder the installed tvm and tvm_ffi packages are in (nothing is imported)."""
    roots = set()
    for module in ("tvm", "tvm_ffi"):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise Refused(f"{sys.executable} has no {module} package (apache-tvm / apache-tvm-ffi wheels)")
        roots.add(os.path.dirname(list(spec.submodule_search_locations)[0]))
    if len(roots) != 1:
        raise Refused(f"tvm and tvm_ffi are installed in different folders: {sorted(roots)}")
    return roots.pop()


def fetch(arch, dest, versions, python_version):
    """<dest>/tvm-<arch>-<tvm>-ffi-<ffi>/: made once (a .complete marker says it is whole), then reused."""
    root = os.path.join(dest, f"tvm-{arch}-{versions['apache-tvm']}-ffi-{versions['apache-tvm-ffi']}")
    if os.path.isfile(os.path.join(root, ".complete")):
        return root
    print(f"tvm_wheels: fetching the {arch} wheels apache-tvm=={versions['apache-tvm']} "
          f"apache-tvm-ffi=={versions['apache-tvm-ffi']}", file=sys.stderr)
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".wheels-{arch}.", dir=dest) as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--only-binary", ":all:", "--platform", f"manylinux_2_28_{arch}", "--python-version", python_version,
             "-d", tmp] + [f"{d}=={versions[d]}" for d in DISTS],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise Refused(f"pip could not download the {arch} wheels " + " ".join(f"{d}=={versions[d]}" for d in DISTS))
        wheels = glob.glob(os.path.join(tmp, "*.whl"))
        if len(wheels) != len(DISTS):
            raise Refused(f"expected {len(DISTS)} wheels from pip, got {[os.path.basename(w) for w in wheels]}")
        unpacked = os.path.join(tmp, "root")
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as z:
                z.extractall(unpacked, [n for n in z.namelist() if KEEP.match(n) and not n.endswith("/")])
        describe(unpacked, arch)  # checked before it takes the real name
        shutil.rmtree(root, ignore_errors=True)
        os.replace(unpacked, root)
    open(os.path.join(root, ".complete"), "w").close()
    return root


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["fetch", "describe"])
    ap.add_argument("--arch", choices=sorted(set(ELF_MACHINES.values())))
    ap.add_argument("--dest", help="fetch: the download cache")
    ap.add_argument("--pinned", action="store_true", help="fetch: the pinned versions, not the installed ones")
    ap.add_argument("--python-version", default="%d.%d" % sys.version_info[:2], help="fetch: wheels for this Python")
    ap.add_argument("--root", help="describe: a folder with unpacked wheels")
    ap.add_argument("--installed", action="store_true", help="describe: the wheels installed in this Python")
    ap.add_argument("--require-pinned", action="store_true", help="fail unless the versions are the pinned ones")
    ap.add_argument("--shell", action="store_true", help="print shell assignments instead of JSON")
    a = ap.parse_args()
    try:
        pins = pinned_versions()
        if a.action == "fetch":
            if not (a.arch and a.dest):
                raise Refused("fetch needs --arch and --dest")
            versions = pins if a.pinned else (installed_versions() or pins)
            info = describe(fetch(a.arch, a.dest, versions, a.python_version), a.arch)
        elif a.root or a.installed:
            info = describe(a.root or installed_root(), a.arch)
        else:
            raise Refused("describe needs --root DIR or --installed")
        where = sys.executable if a.installed else info["root"]
        for dist, key in zip(DISTS, ("tvm_version", "ffi_version")):
            if a.require_pinned and info[key] != pins[dist]:
                raise Refused(f"{where} has {dist} {info[key]}, but the SDK pins {pins[dist]} "
                              "(sdk_python/requirements-dev.txt): a model.so runs only with the TVM runtime of "
                              "the version that exported it")
    except (Refused, OSError) as e:
        print(f"tvm_wheels: error: {e}", file=sys.stderr)
        return 1
    info["pinned"] = pins
    if a.shell:
        for name, key in (("TVM_ROOT", "root"), ("TVM_VERSION", "tvm_version"), ("FFI_VERSION", "ffi_version")):
            print(f"{name}={shlex.quote(info[key])}")
    else:
        print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
