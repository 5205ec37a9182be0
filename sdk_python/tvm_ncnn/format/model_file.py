"""A model.so read as bytes, never loaded: its ELF header, its seal and the metadata JSON of its tvm_ncnn_meta
module (runtime/FORMAT.md, "Reading a model.so without loading it"). Loading would need a runtime for the file's
CPU; reading does not, so a model exported for a Pi inspects on the workstation that exported it."""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass

from ..errors import ModelError

META_MAGIC = b"TVMNCNNM"          # the tvm_ncnn_meta module (runtime/src/meta/module.cc)
META_VERSIONS = (1, 2)            # module format versions; 2 ends with a checksum
SEAL_MAGIC = b"TVMNCSEL"          # runtime/src/format/seal.cc
SEAL_SIZE = 24
SIGNATURE_MAGIC = b"TVMNCSIG"     # runtime/src/format/signature.cc: after the seal, signed files only
SIGNATURE_SIZE = 112
BLOB_SYMBOL = b"__tvm_ffi__library_bin"  # where export_library puts the serialized modules
MAX_JSON = 256 << 20              # runtime/src/meta/module.cc kMaxJsonLen

MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv"}  # ELF e_machine

_P = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_LANES = (0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89)


def checksum64(data: bytes) -> int:
    """FORMAT.md's Checksum64 (runtime/src/format/byte_io.h), for the metadata module's few kilobytes."""
    padded = bytes(data) + b"\0" * (-len(data) % 32)
    words = struct.unpack(f"<{len(padded) // 8}Q", padded)
    lanes = list(_LANES)
    for at in range(0, len(words), 4):
        for i in range(4):
            lanes[i] = ((lanes[i] ^ words[at + i]) * _P) & _MASK
    h = len(data)
    for lane in lanes:
        h = ((h ^ lane) * _P) & _MASK
        h ^= h >> 29
    return h


@dataclass
class ModelFile:
    path: str
    size: int          # bytes, seal included
    machine: str       # the ELF header's CPU: x86_64, aarch64, ...
    sealed: bool       # ends with a seal whose length matches (its checksum is checked by the runtime at load)
    metadata: dict     # the metadata JSON (FORMAT.md, "tvm_ncnn_meta module")
    signed_by: str = ""  # fingerprint of the key a signature names, not verified here (signing.verify does)


def read(path) -> ModelFile:
    """The ELF header, seal and metadata of model.so at `path`, for any target. ModelError (one line) for a file
    that is missing, not an ELF library, truncated, not a tvm-ncnn model, or whose metadata fails its checksum."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelError(f"{path}: is a directory, not a model.so")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ModelError(f"{path}: empty file, not a model.so")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                machine, blob = _elf(data, path)
                signed_by, content = _signature(data, path)
                sealed = _sealed(data[:content], path)
                metadata = _find_metadata(data, blob, path)
    except OSError as err:
        raise ModelError(f"{path}: {err.strerror or err}") from None
    return ModelFile(path, size, machine, sealed, metadata, signed_by)


def _signature(data, path: str) -> tuple[str, int]:
    """(fingerprint of the key the signature trailer names or "", length of the file before the trailer)."""
    if len(data) < SIGNATURE_SIZE or data[-SIGNATURE_SIZE:-SIGNATURE_SIZE + 8] != SIGNATURE_MAGIC:
        return "", len(data)
    covered, = struct.unpack_from("<Q", data, len(data) - SIGNATURE_SIZE + 8)
    if covered != len(data) - SIGNATURE_SIZE:
        raise ModelError(f"{path}: its signature covers {covered} bytes but {len(data) - SIGNATURE_SIZE} precede it "
                         f"(changed after export); copy it again or re-export it")
    from .signing import fingerprint

    key_at = len(data) - SIGNATURE_SIZE + 16
    return fingerprint(data[key_at:key_at + 32]), covered


def _elf(data, path: str) -> tuple[str, tuple[int, int] | None]:
    """(CPU name, (offset, size) of TVM's module blob or None): from the ELF header and the symbol tables."""
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ModelError(f"{path}: not a model.so (not an ELF shared library)")
    if data[4] != 2 or data[5] != 1:
        raise ModelError(f"{path}: not a model.so (a 32-bit or big-endian ELF file; tvm-ncnn writes 64-bit "
                         f"little-endian libraries)")
    machine_id, = struct.unpack_from("<H", data, 18)
    machine = MACHINES.get(machine_id, f"ELF machine {machine_id}")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    end = shoff + shentsize * shnum
    if (shnum and shentsize < 64) or end > len(data):
        raise ModelError(f"{path}: truncated or damaged: its ELF headers describe {end} bytes, the file has "
                         f"{len(data)}")
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind not in (2, 11) or entsize < 24 or link >= shnum:  # SHT_SYMTAB, SHT_DYNSYM
            continue
        names = sections[link][4]
        for at in range(offset, min(offset + size, len(data)) - 23, entsize):
            name, _, _, shndx, value, sym_size = struct.unpack_from("<IBBHQQ", data, at)
            start = names + name
            if data[start:start + len(BLOB_SYMBOL) + 1] == BLOB_SYMBOL + b"\0" and shndx < shnum:
                section = sections[shndx]
                return machine, (section[4] + value - section[3], sym_size)
    return machine, None


def _sealed(data, path: str) -> bool:
    if len(data) < SEAL_SIZE or data[-SEAL_SIZE:-SEAL_SIZE + 8] != SEAL_MAGIC:
        return False
    covered, = struct.unpack_from("<Q", data, len(data) - SEAL_SIZE + 8)
    if covered != len(data) - SEAL_SIZE:
        raise ModelError(f"{path}: its seal covers {covered} bytes but {len(data) - SEAL_SIZE} precede it "
                         f"(changed after export); copy it again or re-export it")
    return True


def _find_metadata(data, blob: tuple[int, int] | None, path: str) -> dict:
    """The first well-formed tvm_ncnn_meta module in TVM's blob (the whole file when the blob's symbol is not
    found, as the runtime looks): magic, a known version, a length inside the file, the checksum, a JSON object."""
    start, end = (blob[0], blob[0] + blob[1]) if blob else (0, len(data))
    damaged = None
    at = data.find(META_MAGIC, start, end)
    while at >= 0:
        try:
            return _meta_module(data, at, end, path)
        except ModelError as err:
            damaged = damaged or err
        at = data.find(META_MAGIC, at + 1, end)
    if damaged:
        raise damaged
    raise ModelError(f"{path}: not a tvm-ncnn model (no tvm_ncnn_meta module in it)")


def _meta_module(data, at: int, end: int, path: str) -> dict:
    if at + 20 > end:
        raise ModelError(f"{path}: its metadata module is truncated")
    version, length = struct.unpack_from("<IQ", data, at + 8)
    if version not in META_VERSIONS:
        raise ModelError(f"{path}: unknown metadata module format version {version} (this SDK reads "
                         f"{', '.join(map(str, META_VERSIONS))})")
    json_end = at + 20 + length
    if length > MAX_JSON or json_end + (8 if version >= 2 else 0) > end:
        raise ModelError(f"{path}: its metadata module is truncated")
    if version >= 2:
        stored, = struct.unpack_from("<Q", data, json_end)
        if checksum64(data[at:json_end]) != stored:
            raise ModelError(f"{path}: its metadata fails its checksum (changed after export); re-export it")
    try:
        metadata = json.loads(bytes(data[at + 20:json_end]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelError(f"{path}: its metadata is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise ModelError(f"{path}: its metadata JSON is not an object")
    return metadata
