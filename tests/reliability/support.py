"""Helpers of the reliability suite: run deploy_app or tvm_ncnn.load in a child process (a crash there is a
signal the test sees, a hang a timeout), check that a failure is one clear line, and find the module bytes
inside a model.so."""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_APP = Path(os.environ.get("TVM_NCNN_DEPLOY_APP", ROOT / "build" / "host" / "deploy_app"))
BUILD_DIR = Path(os.environ.get("TVM_NCNN_BUILD_DIR", DEPLOY_APP.parent))
HERE = Path(__file__).resolve().parent

# No thread variables: one process per case, whatever TVM_NCNN_TVM_POOL the caller set (deploy_app re-executes itself
# only to set GOMP_SPINCOUNT for two pools).
CHILD_ENV = {**os.environ, "TVM_NCNN_WAIT_POLICY": "inherit"}
TIMEOUT_S = 60  # any single case: far above what it needs, so only a hang reaches it


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    @property
    def crashed(self) -> bool:  # killed by a signal (SIGSEGV, SIGABRT, ...)
        return self.returncode < 0

    def describe(self) -> str:
        if self.crashed:
            return f"killed by {signal.Signals(-self.returncode).name}; stderr: {self.stderr[-2000:]}"
        return f"exit {self.returncode}; stderr: {self.stderr[-2000:]}"


def run(argv: list[str], timeout: float = TIMEOUT_S, env: dict | None = None) -> Outcome:
    """Run a child; a hang fails the test (with what it printed) instead of blocking the suite."""
    try:
        done = subprocess.run(list(map(str, argv)), capture_output=True, timeout=timeout, env=env or CHILD_ENV)
    except subprocess.TimeoutExpired as hang:
        out = (hang.stderr or b"").decode("utf-8", "replace")
        raise AssertionError(f"{argv} hung for {timeout} s; stderr so far: {out[-2000:]}") from None
    # Messages must be UTF-8; decoding with "replace" lets the one-line check below report bad bytes.
    return Outcome(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))


def deploy_app(model, input_path, *extra, timeout: float = TIMEOUT_S) -> Outcome:
    return run([DEPLOY_APP, model, input_path, *extra], timeout=timeout)


def assert_one_line_error(outcome: Outcome, *needles: str, exit_code: int | None = None) -> str:
    """deploy_app failed cleanly: non-zero exit (not a signal), exactly one line on stderr, "deploy_app: error: "
    and every needle (file, op, shape, version at fault) in it. Returns the line."""
    assert not outcome.crashed, outcome.describe()
    assert outcome.returncode != 0, f"expected a failure, got exit 0; stdout: {outcome.stdout[-1000:]}"
    if exit_code is not None:
        assert outcome.returncode == exit_code, outcome.describe()
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {outcome.stderr[-2000:]}"
    line = lines[0]
    assert line.startswith("deploy_app: error: "), line
    assert "\ufffd" not in line and line.isprintable(), f"unprintable bytes in {line!r}"
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


# ---- tvm_ncnn.load / tvm_ncnn.export in a child process: results as JSON lines (see py_worker.py).

class PythonWorker:
    """A child Python running py_worker.py, kept across cases and restarted after a crash."""

    def __init__(self):
        self.proc = None

    def _start(self):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, str(HERE / "py_worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=CHILD_ENV)

    def call(self, case: dict, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write((json.dumps(case) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if line:
            return json.loads(line)
        if not ready:
            self.proc.kill()
        code = self.proc.wait()
        self.stderr.seek(0)
        said = self.stderr.read().decode("utf-8", "replace")[-2000:]
        self.proc = None
        what = f"hung for {timeout} s" if not ready else (
            f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}")
        raise AssertionError(f"python worker {what} on case {case}; stderr: {said}")


_WORKER = PythonWorker()


def python_cases(cases: list[dict], timeout: float = 300) -> list[dict]:
    """Run cases (dicts: {"op": "load"|"call"|"image"|"export", ...}, see py_worker.py) in the child Python;
    one result per case: {"ok": bool, "type": exception class, "message": str, ...}. A crash or a hang fails
    the test naming the case."""
    return [_WORKER.call(case, timeout) for case in cases]


def assert_model_error(result: dict, *needles: str) -> str:
    """A Python call failed with tvm_ncnn.ModelError and a one-line message naming what is at fault."""
    assert not result["ok"], f"expected a ModelError, the call succeeded: {result}"
    assert result["type"] == "ModelError", result
    message = result["message"]
    assert "\n" not in message and message.strip(), repr(message)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


# ---- model.so layout: the exported library's module blob and the tvm-ncnn modules inside it.

def elf_symbol_range(path, name: str) -> tuple[int, int]:
    """(file offset, size) of a dynamic symbol's bytes in a 64-bit little-endian ELF shared library."""
    data = Path(path).read_bytes()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    SHT_DYNSYM = 11
    for sec in sections:
        if sec[1] != SHT_DYNSYM:
            continue
        strtab = sections[sec[6]]
        for k in range(sec[5] // sec[9]):
            st_name, _info, _other, _shndx, value, size = struct.unpack_from("<IBBHQQ", data, sec[4] + k * sec[9])
            end = data.index(b"\0", strtab[4] + st_name)
            if data[strtab[4] + st_name:end].decode() == name:
                for s in sections:  # virtual address -> file offset through the section that holds it
                    addr, offset, sec_size = s[3], s[4], s[5]
                    if s[1] != 8 and addr <= value < addr + sec_size:  # not SHT_NOBITS
                        return offset + (value - addr), size
    raise AssertionError(f"{path}: no dynamic symbol {name}")


SEAL_MAGIC = b"TVMNCSEL"  # runtime/FORMAT.md "Seal": magic, u64 covered length, u64 checksum, at the very end


def strip_seal(data: bytes) -> bytes:
    """model.so without its seal: still a valid model.so, for tests that change module bytes on purpose."""
    return data[:-24] if data[-24:-16] == SEAL_MAGIC else data


MODULE_MAGICS = {b"TVMNCNN\0": "ncnn", b"TVMNCNNM": "tvm_ncnn_meta"}


@dataclass
class ModuleSpan:
    kind: str
    start: int   # file offset of the magic
    end: int     # one past the checksum trailer
    param: tuple[int, int] | None = None  # (offset, length) of an ncnn module's param text
    weights_symbol: str = ""  # version 3: the symbol of model.so that holds the region's weights


def module_spans(data: bytes) -> list[ModuleSpan]:
    """Each tvm-ncnn module (runtime/FORMAT.md) serialized in a model.so, found by its magic and walked by
    its fields. Only versions 2 and 3 (with the checksum trailer; an ncnn module of version 3 references its
    weights, a symbol of model.so, instead of holding them)."""
    spans = []
    for magic, kind in MODULE_MAGICS.items():
        at = data.find(magic)
        while at >= 0:
            version, = struct.unpack_from("<I", data, at + 8)
            assert version in ((2, 3) if kind == "ncnn" else (2,)), f"module at {at} has format version {version}"
            pos = at + 12
            fields = []

            def take_str():
                nonlocal pos
                n, = struct.unpack_from("<Q", data, pos)
                fields.append((pos + 8, n))
                pos += 8 + n

            weights_symbol = ""
            if kind == "tvm_ncnn_meta":
                take_str()
            elif version == 3:
                take_str(), take_str(), take_str()  # symbol, param, weights symbol; then u64 size, u64 checksum
                weights_symbol = data[fields[2][0]:fields[2][0] + fields[2][1]].decode()
                pos += 16
            else:
                take_str(), take_str(), take_str()  # symbol, param, weights
                for _ in range(2):  # inputs, outputs
                    count, = struct.unpack_from("<I", data, pos)
                    pos += 4
                    for _ in range(count):
                        take_str()
                        ndim, = struct.unpack_from("<I", data, pos)
                        pos += 4 + 8 * ndim
            spans.append(ModuleSpan(kind, at, pos + 8, fields[1] if kind == "ncnn" else None, weights_symbol))
            at = data.find(magic, at + 1)
    return sorted(spans, key=lambda s: s.start)


def checksum64(data: bytes) -> int:
    """runtime/FORMAT.md's module checksum (byte_io.h Checksum64), written again from the description."""
    prime, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1
    lanes = [0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89]
    padded = data + b"\0" * (-len(data) % 32)
    for block in range(0, len(padded), 32):
        words = struct.unpack_from("<4Q", padded, block)
        lanes = [((lane ^ w) * prime) & mask for lane, w in zip(lanes, words)]
    h = len(data)
    for lane in lanes:
        h = ((h ^ lane) * prime) & mask
        h ^= h >> 29
    return h


def reseal(data: bytearray, span: ModuleSpan) -> None:
    """Recompute a module's checksum trailer after its bytes were changed on purpose."""
    struct.pack_into("<Q", data, span.end - 8, checksum64(bytes(data[span.start:span.end - 8])))
