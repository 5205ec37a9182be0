"""Issue #7, part 4: fuzzing the model loader, bounded and seeded so that CI runs the same cases every time.

1. Any byte of a sealed model.so (ELF headers, TVM's code and VM bytecode, the modules, the seal) mutated: the
   seal (or the ELF checks before it) must refuse every one but a change to the seal's own magic, which leaves
   an intact, unsealed file.
2. Bytes of model.so's tvm-ncnn modules (ncnn regions: graph, weights, blob specs; metadata), and TVM's framing
   around them, mutated in place in an unsealed model.so: the modules' checksums (or a bounds check before
   them) must refuse every one.
3. The ncnn graph text mutated (digits, separators, names, counts) and the checksum recomputed, so that the
   mutation reaches ncnn and the runtime's graph checks: each load must either work or fail with one line.
Each case is its own deploy_app process, so a crash is a signal and a hang a timeout, named with the case that
caused it. TVM_NCNN_FUZZ_CASES=<n> runs n cases per part (default 120) for a longer local run.

Not covered: mutations of TVM's part of an unsealed model.so. TVM does not validate its code or executable, so a
corrupted byte there can crash; the seal is what guards it (README "Errors and limits").
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor

from support import (SEAL_MAGIC, ModuleSpan, assert_model_error, deploy_app, module_spans, python_cases, reseal,
                     strip_seal)
from reliability_fixtures import models  # noqa: F401  (the fixture)

CASES = int(os.environ.get("TVM_NCNN_FUZZ_CASES", "120"))


def framing(span: ModuleSpan) -> int:
    """The bytes TVM writes before a module's payload: the kind string's u64 length, the kind, the payload's u64
    length. (Anything before them is TVM's own -- the import tree, the previous entry -- which the seal guards.)"""
    return 8 + len(span.kind) + 8


def run_cases(model_dir, x, cases) -> list[str]:
    """cases: [(name, bytes)]. Writes each model.so, runs deploy_app on it (two at a time); returns problems."""
    def one(case):
        name, data = case
        path = model_dir / f"{name}.so"
        path.write_bytes(data)
        done = deploy_app(path, x, "--repeat", "1", "--threads", "1", timeout=60)
        lines = done.stderr.splitlines()
        if done.crashed:
            return f"{name}: {done.describe()}"
        if done.returncode not in (0, 1):
            return f"{name}: unexpected {done.describe()}"
        if done.returncode == 1 and (len(lines) != 1 or not lines[0].startswith("deploy_app: error: ")):
            return f"{name}: not one error line: {done.stderr[-1500:]!r}"
        if done.returncode == 1 and not lines[0].isprintable():
            return f"{name}: unprintable error line {lines[0]!r}"
        path.unlink()  # kept only when something went wrong, as the reproducer
        return "ok" if done.returncode == 0 else "refused"
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, cases))


def mutate_byte(rng: random.Random, old: int) -> int:
    new = rng.choice([0x00, 0xFF, old ^ (1 << rng.randrange(8)), rng.randrange(256), (old + 1) & 0xFF])
    return new if new != old else old ^ 0x01


def test_any_byte_of_a_sealed_model_is_refused(models, tmp_path):
    source = models["two_regions"]["so"].read_bytes()
    assert source[-24:-16] == SEAL_MAGIC, "the fixture's models are sealed"
    magic = range(len(source) - 24, len(source) - 16)
    rng = random.Random(5)
    cases = []
    for i in range(CASES):
        data = bytearray(source)
        at = rng.randrange(len(data))
        old = data[at]
        data[at] = mutate_byte(rng, old)
        cases.append((f"sealed{i}_at{at}_{old:02x}to{data[at]:02x}", bytes(data)))
    outcomes = run_cases(tmp_path, models["x"], cases)
    problems = [o for o in outcomes if o not in ("ok", "refused")]
    assert not problems, f"{len(problems)} of {len(cases)} cases misbehaved:\n" + "\n".join(problems[:20])
    ran = [name for (name, _), o in zip(cases, outcomes) if o == "ok" and int(name.split("_at")[1].split("_")[0])
           not in magic]
    assert not ran, f"mutated bytes were loaded and run instead of refused: {ran[:20]}"


def test_module_bytes_mutated_are_refused(models, tmp_path):
    source = strip_seal(models["two_regions"]["so"].read_bytes())
    spans = module_spans(source)
    assert [s.kind for s in spans].count("ncnn") == 2 and [s.kind for s in spans].count("tvm_ncnn_meta") == 1
    offsets = [o for s in spans for o in range(s.start - framing(s), s.end)]
    rng = random.Random(7)
    cases = []
    for i in range(CASES):
        data = bytearray(source)
        at = rng.choice(offsets)
        old = data[at]
        data[at] = mutate_byte(rng, old)
        if rng.random() < 0.2:  # a second byte nearby: a length and what it covers
            near = min(max(at + rng.randrange(-16, 17), offsets[0]), offsets[-1])
            data[near] = mutate_byte(rng, data[near])
        cases.append((f"blob{i}_at{at}_{old:02x}to{data[at]:02x}", bytes(data)))
    outcomes = run_cases(tmp_path, models["x"], cases)
    problems = [o for o in outcomes if o not in ("ok", "refused")]
    assert not problems, f"{len(problems)} of {len(cases)} cases misbehaved:\n" + "\n".join(problems[:20])
    ran = [name for (name, _), o in zip(cases, outcomes) if o == "ok"]
    assert not ran, f"mutated module bytes were loaded and run instead of refused: {ran[:20]}"


PARAM_ALPHABET = b"0123456789 =-\n.abzAZ_"


def mutate_param(rng: random.Random, text: bytearray) -> str:
    """Same-length mutations of ncnn .param text (the length is framed by the module); returns what it did."""
    digits = [i for i, c in enumerate(text) if chr(c).isdigit()]
    kind = rng.choice(["digit", "digit", "digit", "char", "swap", "minus", "space"])
    if kind in ("digit", "minus") and digits:
        at = rng.choice(digits)
        text[at] = ord("-") if kind == "minus" else ord(rng.choice("0123456789"))
    elif kind == "swap":
        at = rng.randrange(len(text) - 1)
        text[at], text[at + 1] = text[at + 1], text[at]
    elif kind == "space":
        at = rng.randrange(len(text))
        text[at] = ord(rng.choice(" \n"))
    else:
        at = rng.randrange(len(text))
        text[at] = rng.choice(PARAM_ALPHABET)
    return f"{kind}@{at}"


def test_graph_text_mutated_is_run_or_refused(models, tmp_path):
    """The checksum is recomputed, so ncnn parses each mutated graph: a different but valid graph may run (the
    model as written), anything else is one error line. Never a crash, a hang, or ncnn's own stray output."""
    source = strip_seal(models["two_regions"]["so"].read_bytes())
    regions: list[ModuleSpan] = [s for s in module_spans(source) if s.kind == "ncnn"]
    rng = random.Random(11)
    cases = []
    for i in range(CASES):
        data = bytearray(source)
        region = rng.choice(regions)
        start, length = region.param
        text = bytearray(data[start:start + length])
        what = [mutate_param(rng, text) for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4))]
        data[start:start + length] = text
        reseal(data, region)
        cases.append((f"param{i}_{region.start}_{'+'.join(what)}", bytes(data)))
    outcomes = run_cases(tmp_path, models["x"], cases)
    problems = [o for o in outcomes if o not in ("ok", "refused")]
    assert not problems, f"{len(problems)} of {len(cases)} cases misbehaved:\n" + "\n".join(problems[:20])
    assert outcomes.count("refused") > len(cases) // 4, "the mutations should break most graphs"


def test_python_load_of_mutated_models(models, tmp_path):
    """The same loader through tvm_ncnn.load: a ModelError, never a crash of the Python process."""
    source = strip_seal(models["two_regions"]["so"].read_bytes())
    spans = module_spans(source)
    rng = random.Random(13)
    cases = []
    for i in range(20):
        data = bytearray(source)
        span = rng.choice(spans)
        at = rng.randrange(span.start, span.end)
        data[at] = mutate_byte(rng, data[at])
        path = tmp_path / f"py{i}.so"
        path.write_bytes(bytes(data))
        cases.append({"op": "load", "path": str(path), "threads": 1, "run": True})
    for case, result in zip(cases, python_cases(cases)):
        assert_model_error(result, os.path.basename(case["path"]))


def test_a_graph_ncnn_complains_about_is_refused_in_one_line(models, tmp_path):
    """A layer reading a blob no layer makes (and a header counting it): ncnn's load_param prints that it cannot
    find the blob and goes on, and the runtime's own graph check refuses the graph -- in one line, without ncnn's
    complaint as a stray line before it."""
    source = strip_seal(models["two_regions"]["so"].read_bytes())
    region = next(s for s in module_spans(source) if s.kind == "ncnn")
    start, length = region.param
    lines = bytes(source[start:start + length]).decode().split("\n")
    layer_count, blob_count = (int(n) for n in lines[1].split())
    assert len(str(blob_count + 1)) == len(str(blob_count))  # the text keeps its length
    lines[1] = f"{layer_count} {blob_count + 1}"
    last = lines[layer_count + 1].split()
    bottom = last[4]  # type, name, bottom count, top count, the first bottom
    lines[layer_count + 1] = lines[layer_count + 1].replace(f" {bottom} ", f" {bottom[:-1]}Z ", 1)
    data = bytearray(source)
    data[start:start + length] = "\n".join(lines).encode()
    reseal(data, region)
    assert run_cases(tmp_path, models["x"], [("unknown_bottom", bytes(data))]) == ["refused"]
