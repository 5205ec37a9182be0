"""The regions' weights as a section of model.so of their own (runtime/FORMAT.md, "Weights section").

TVM's export_library stores every runtime module's bytes in one blob, and TVM's loader copies each module out of
it (twice) before the module sees it; the weights would then be copied once more into ncnn. Linked instead as
symbols of their own in model.so's read-only data, they are mapped by dlopen and read in place by ncnn, and the
ncnn modules carry only a reference (symbol, size, checksum: module format version 3). `addons` switches every
ncnn module of the executable to that reference and returns the assembly file that holds the weights, for
export_library's addons: the same compiler that links model.so assembles it, for any target.
"""

from __future__ import annotations

import os

# Page-aligned start, so that the runtime can hand the pages back to the kernel once ncnn has transformed the
# weights (madvise works on whole pages; 16 KiB covers the 4 KiB and 16 KiB kernels of Raspberry Pi OS).
SECTION_ALIGN = 16384
SYMBOL_ALIGN = 64  # each region's weights start on a cache line (ncnn needs 4-byte alignment)


def _ncnn_modules(mod, seen=None) -> list:
    seen = set() if seen is None else seen
    found = []
    for child in mod.imports:
        if id(child) in seen or any(child.same_as(s) for s in found if hasattr(child, "same_as")):
            continue
        seen.add(id(child))
        if child.kind == "ncnn":
            found.append(child)
        found += _ncnn_modules(child, seen)
    return found


def addons(executable, workdir: str) -> list[str]:
    """The weights of every ncnn region as one assembly file; [] when no region has weights."""
    lines = []
    for i, module in enumerate(_ncnn_modules(executable.mod)):
        name, weights = module.get_function("tvm_ncnn.external_weights")()
        if not name:
            continue
        path = os.path.join(workdir, f"weights_{i}.bin")
        with open(path, "wb") as f:
            f.write(bytes(weights))
        lines += [f".balign {SYMBOL_ALIGN}", f".globl {name}", f".type {name}, %object", f"{name}:",
                  f'.incbin "{path}"', f".size {name}, . - {name}"]
    if not lines:
        return []
    source = os.path.join(workdir, "tvm_ncnn_weights.S")
    with open(source, "w") as f:
        # "a": allocated, read-only, no code: mapped by dlopen with the rest of the read-only data.
        f.write("\n".join(['.section .rodata.tvm_ncnn_weights,"a"', f".balign {SECTION_ALIGN}", *lines, ""]))
    return [source]
