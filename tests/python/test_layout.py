"""The SDK's shape, held: subpackages in pipeline order with no import pointing back up and no cycle (deferred
imports count), light package __init__s, one table per fact equal on both sides of the language boundary, and a
wheel that carries every subpackage."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sdk_python" / "tvm_ncnn"

# Lowest first: a stage imports only from those before it (and the top-level modules errors, relax_util). The
# pipeline reads down the list; runtime/ sits low because codegen, export and int8 all call the native library,
# and nothing in it compiles. inspection is the one top-level module of the API (inspect a model or a model.so).
ORDER = ["meta", "zoo", "runtime", "ncnn", "frontend", "partition", "compile", "format", "tune", "int8", "exporter",
         "inspection", "cli"]
SUBPACKAGES = set(ORDER) - {"inspection"}
BASE = {"errors", "relax_util"}
TOP_LEVEL = {"__init__", "errors", "relax_util", "inspection"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict) -> set[str]:
    """tvm_ncnn modules `name` imports anywhere in its file (inside functions too)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("tvm_ncnn") and target != name and not name.startswith(target + "."):
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_import_cycle():
    edges, state, cycles = graph(), {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import cycles: {cycles}"


def test_subpackages_import_only_earlier_stages():
    rank = {name: i for i, name in enumerate(ORDER)}
    wrong = []
    for module, targets in graph().items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in rank:
            continue
        for target in targets:
            stage = target.split(".")[1] if target.count(".") else None
            if stage in BASE or stage is None or stage == parts[1]:
                continue
            if stage not in rank or rank[stage] > rank[parts[1]]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, f"imports pointing back up the pipeline (ORDER): {wrong}"


def test_top_level_holds_few_modules_and_no_file_is_long():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == TOP_LEVEL, top
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == SUBPACKAGES, subpackages
    long = [f"{p.relative_to(PACKAGE)} ({n})" for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400]
    assert not long, long


def test_package_inits_stay_light():
    """Importing a subpackage imports none of its modules' dependencies (cli excepted: it is the command), and
    load/inspect import no TVM compiler."""
    code = ("import sys, importlib\n"
            f"for name in {sorted(SUBPACKAGES - {'cli'})!r}:\n"
            "    importlib.import_module('tvm_ncnn.' + name)\n"
            "heavy = [m for m in ('tvm', 'tvm_ffi', 'torch', 'onnx') if m in sys.modules]\n"
            "import tvm_ncnn.runtime.model, tvm_ncnn.format.describe, tvm_ncnn.inspection\n"
            "compiler = 'tvm' in sys.modules\n"
            "print(heavy, compiler)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] False", done.stdout


def test_python_and_cpp_tables_agree():
    """Each fact has one table a side: meta/*.py and runtime/src/meta/ (tvm_ncnn.tables)."""
    from tvm_ncnn.meta import postprocess, precision, preprocess
    from tvm_ncnn.runtime import native

    cpp = {str(k): [str(v) for v in values] for k, values in native.get_function("tvm_ncnn.tables")().items()}
    assert cpp == {"precisions": list(precision.PRECISIONS), "load_precisions": list(precision.LOAD_PRECISIONS),
                   "tasks": list(postprocess.TASKS), "layouts": list(postprocess.LAYOUTS),
                   "resize_modes": list(preprocess.RESIZE_MODES)}


def test_a_wheel_built_from_sdk_python_carries_every_subpackage(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT / "sdk_python")], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("tvm_ncnn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{'/'.join(m.split('.'))}{'/__init__' if p.name == '__init__.py' else ''}.py"
                for m, p in modules().items()}
    assert expected <= names, sorted(expected - names)


def test_public_names_stay_functions_after_every_module_is_imported():
    """A subpackage named like a public function would replace it on the package once imported."""
    import importlib

    import tvm_ncnn

    for name in modules():
        if not name.endswith("__main__"):
            importlib.import_module(name)
    for name in ("export", "load", "inspect", "read_metadata", "import_model"):
        assert callable(getattr(tvm_ncnn, name)), name
