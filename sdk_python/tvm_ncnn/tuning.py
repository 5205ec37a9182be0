"""Optional tuning: MetaSchedule on the part of a model left to TVM, and applying its database at export.

`tvm-ncnn tune MODEL -o tuning/ --target T --trials N` imports and partitions the model exactly as export does
(exporter.tvm_part: the ncnn regions are already external calls, so they are not tuned), legalizes and fuses it
as the export pipeline does (tvm_schedules.legalized), and hands those TIR functions to MetaSchedule's
tune_relax. On the host the candidates are built and timed here (TVM's local builder and runner); for a board
they are cross-compiled to .so files here and timed on the board through TVM's RPC tracker (rpc.py) -- never
with relax.transform.MetaScheduleTuneIRMod, which always uses the local runner.

`tvm-ncnn export --tuning tuning/` runs MetaScheduleApplyDatabase on the same legalized module: a function the
database has takes its tuned schedule (marked scheduled, so tvm_schedules' rules skip it), the rest keep their
default rule. MetaSchedule's database does not record the target a schedule was measured on, so the directory
does (TUNING_FILE), and export refuses a directory tuned for another target.

Serialization: with apache-tvm-ffi 0.1.15 (the pinned one) ffi.ToJSONGraph segfaults on every TVM IR object
(tvm.ir.save_json(PrimType("int32")) crashes; 0.1.14 works), and MetaSchedule's JSON database and its builder's
worker processes (which pickle IRModules) both go through it. So candidates are built in this process
(InProcessBuilder), records are kept in a MemoryDatabase, and the directory stores each record as its trace
(plain JSON) keyed by the structural hash of its function; export rebuilds the records against the functions of
its own legalized module, which are the same.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import tvm
import tvm_ffi

from .errors import ModelError
from .targets import DeviceTarget, get_target

TUNING_FILE = "tvm_ncnn_tuning.json"  # what was tuned, for which target, and the best schedule of each function


@dataclass
class TuneResult:
    path: str
    target: str
    trials: int  # measured candidates (what the database holds), at most the trials asked for
    tasks: list  # [{name, weight}] the TIR functions tuned
    tuned: int  # tasks with at least one valid measured schedule
    seconds: float


def tune(model, output: str, target: str = "host", trials: int = 64, input_shapes: dict | None = None,
         offload: bool = True, rpc_tracker: str | None = None, rpc_key: str | None = None,
         example_inputs=None, session_timeout: int = 120) -> TuneResult:
    """Tune what TVM compiles of `model` for `target` with MetaSchedule, writing the database to `output`.
    A board target (rpi4, rpi5, aarch64 from a non-ARM host) measures through an RPC tracker (rpc.py)."""
    from tvm.s_tir import meta_schedule as ms

    from . import tvm_schedules
    from .exporter import tvm_part
    from .frontend import import_model

    start = time.perf_counter()
    device = get_target(target)
    if trials < 1:
        raise ModelError(f"--trials {trials}: give at least 1 trial")
    runner, builder, where = _measurement(device, rpc_tracker, rpc_key, session_timeout)
    output = os.path.abspath(os.fspath(output))
    _prepare_output(output, device)
    imported = import_model(model, input_shapes, example_inputs)
    mod, _placement = tvm_part(imported, offload)
    tvm_target = tuning_target(device)
    mod = tvm_schedules.legalized(mod, tvm_target)
    extracted = ms.relax_integration.extract_tasks(mod, tvm_target)
    tasks = [{"name": t.task_name, "weight": int(t.weight)} for t in extracted]
    if not tasks:
        raise ModelError(f"{imported.source}: nothing is left to TVM to tune (every op runs in ncnn)")
    # Each task gets a round before the scheduler favours the slow ones: a few dozen trials reach every function.
    per_iter = max(2, min(16, trials // len(tasks)))
    database = ms.relax_integration.tune_relax(
        mod=mod, params={}, target=tvm_target, work_dir=output, max_trials_global=trials,
        num_trials_per_iter=per_iter, builder=builder, runner=runner, database=ms.database.MemoryDatabase(),
        cost_model=_cost_model(), strategy=_search(trials, len(tasks)), seed=0)
    measured = database.get_all_tuning_records()
    # The default rules' schedule of each tuned function, timed the same way: a tuned schedule is kept only
    # where it is faster (a few trials can lose to the rules).
    defaults = _default_times(database, tvm_target, builder, runner)
    best = [r for r in _best_records(database) if r["mean"] < defaults.get(r["hash"], float("inf"))]
    names = {str(tvm_ffi.structural_hash(t.dispatched[0])): t.task_name for t in extracted}
    for r in best:
        r["default_secs"] = defaults.get(r["hash"])
        r["task"] = names.get(r["hash"], r["task"])  # the function's name in the module, for people
    info = {
        "target": device.name,
        "tvm_target": str(tvm_target),
        "tvm_version": tvm.__version__,
        "model": imported.source,
        "offload": offload,
        "trials": trials,
        "measured": len(measured),
        "measured_on": where,
        "tasks": tasks,
        "records": best,
    }
    seconds = time.perf_counter() - start
    info["seconds"] = round(seconds, 1)
    with open(os.path.join(output, TUNING_FILE), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    return TuneResult(output, device.name, len(measured), tasks, len(best), seconds)


# MetaSchedule serializes IR (see the module docstring): with the pinned apache-tvm-ffi that crashes, so
# `tvm-ncnn tune` runs in a child Python that finds apache-tvm-ffi 0.1.14.post1 first on its path.
TUNE_FFI_VERSION = "0.1.14.post1"
TUNE_FFI_ENV = "TVM_NCNN_TUNE_FFI"  # where that apache-tvm-ffi is installed (default: <venv>/tvm-ncnn-tune-ffi)


def run_tune_command(args) -> int:
    """`tvm-ncnn tune`: in this process when TVM can serialize its IR here, else in a child that can."""
    import subprocess
    import sys

    if os.environ.get("TVM_NCNN_TUNE_CHILD") or _serialization_works(os.environ.get("PYTHONPATH", "")):
        result = tune(args.model, args.output, target=args.target, trials=args.trials,
                      input_shapes=dict(args.input or []), offload=not args.no_offload,
                      rpc_tracker=args.rpc_tracker, rpc_key=args.rpc_key)
        print(f"wrote {result.path}: {result.trials} candidates measured over {len(result.tasks)} TVM function(s) "
              f"in {result.seconds:.0f} s; {result.tuned} tuned schedule(s) beat the default rules; apply them "
              f"with tvm-ncnn export --tuning {result.path} --target {result.target}")
        return 0
    overlay = os.environ.get(TUNE_FFI_ENV) or os.path.join(sys.prefix, "tvm-ncnn-tune-ffi")
    path = overlay + os.pathsep + os.environ.get("PYTHONPATH", "") if os.path.isdir(overlay) else None
    if path is None or not _serialization_works(path):
        raise ModelError(f"MetaSchedule crashes with the installed apache-tvm-ffi (ffi.ToJSONGraph); install "
                         f"{TUNE_FFI_VERSION} beside it for tuning: {sys.executable} -m pip install --no-deps "
                         f"--target {overlay} apache-tvm-ffi=={TUNE_FFI_VERSION}")
    env = dict(os.environ, PYTHONPATH=path, TVM_NCNN_TUNE_CHILD="1")
    return subprocess.call([sys.executable, "-m", "tvm_ncnn.cli", *sys.argv[1:]], env=env)


def _serialization_works(pythonpath: str) -> bool:
    import subprocess
    import sys

    probe = "import tvm; tvm.ir.save_json(tvm.ir.PrimType('int32'))"
    env = dict(os.environ, PYTHONPATH=pythonpath)
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True).returncode == 0


def tuning_target(device: DeviceTarget) -> tvm.target.Target:
    """The TVM target candidates are generated for: the device's, with the core count MetaSchedule's parallel
    rules read (a board's four cores; here, this machine's)."""
    llvm = dict(device.llvm)
    llvm["num-cores"] = 4 if device.cross or device.name != "host" else (os.cpu_count() or 1)
    return tvm.target.Target(llvm)


def _measurement(device: DeviceTarget, rpc_tracker: str | None, rpc_key: str | None, timeout: int):
    """(runner, builder, description): TVM's local ones on the host, or an RPC runner and a cross builder."""
    if bool(rpc_tracker) != bool(rpc_key):
        raise ModelError("give --rpc-tracker HOST:PORT and --rpc-key KEY together")
    if not rpc_tracker:
        if device.cross:
            raise ModelError(f"target {device.name} is measured on the board: give --rpc-tracker HOST:PORT and "
                             f"--rpc-key KEY (README: Tuning)")
        return "local", InProcessBuilder(), "local"
    from . import rpc

    host, port = rpc.parse_tracker(rpc_tracker)
    rpc.check_tracker(host, port, rpc_key)  # an unreachable tracker or a key no server has fails now, in one line
    return (rpc.runner(host, port, rpc_key, timeout), rpc.builder(device),
            f"rpc {rpc_key} via {host}:{port}")


def _prepare_output(output: str, device: DeviceTarget) -> None:
    """A new or empty directory, or one tuned before for the same target (MetaSchedule adds to its database)."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise ModelError(f"{output}: exists and is not a directory")
    os.makedirs(output, exist_ok=True)
    if os.path.exists(os.path.join(output, TUNING_FILE)):
        check_tuning_dir(output, device)


def check_tuning_dir(path, device: DeviceTarget) -> str:
    """The absolute path of a tuning directory written for `device`, or ModelError in one line."""
    path = os.path.abspath(os.fspath(path))
    info_path = os.path.join(path, TUNING_FILE)
    if not os.path.isdir(path):
        raise ModelError(f"--tuning {path}: no such directory (write it with tvm-ncnn tune)")
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        raise ModelError(f"--tuning {path}: not a tuning directory ({TUNING_FILE} missing or unreadable; "
                         f"write it with tvm-ncnn tune)") from None
    if info.get("target") != device.name:
        raise ModelError(f"--tuning {path}: tuned for target {info.get('target')}, not {device.name} "
                         f"(tune with --target {device.name}, or export --target {info.get('target')})")
    if info.get("tvm_version") != tvm.__version__:
        raise ModelError(f"--tuning {path}: tuned with TVM {info.get('tvm_version')}, this is TVM "
                         f"{tvm.__version__}: tune again")
    if not isinstance(info.get("records"), list):
        raise ModelError(f"--tuning {path}: {TUNING_FILE} holds no records (the tuning did not finish?)")
    return path


def apply_database(mod: tvm.IRModule, work_dir: str, report: dict | None = None) -> tvm.IRModule:
    """MetaScheduleApplyDatabase on the legalized module (within the target's scope) with the directory's
    records: functions it has come back scheduled; report[name] = "tuned" for them."""
    from tvm.s_tir import meta_schedule as ms

    with open(os.path.join(work_dir, TUNING_FILE), encoding="utf-8") as f:
        records = {r["hash"]: r for r in json.load(f)["records"]}
    database = ms.database.MemoryDatabase()
    target = tvm.target.Target.current()
    for _gv, func in mod.functions_items():
        if not isinstance(func, tvm.tirx.PrimFunc) or _scheduled(func):
            continue
        workload_mod = ms.tune_context._normalize_mod(func)
        record = records.get(str(tvm_ffi.structural_hash(workload_mod)))
        if record is None:
            continue
        workload = database.commit_workload(workload_mod)
        try:  # the trace replays on the function; one that no longer applies is left to the default rules
            database.commit_tuning_record(ms.database.TuningRecord.from_json(
                tvm.runtime.convert([_from_plain(record["trace"]), record["run_secs"], target.export(), None]),
                workload))
        except Exception:  # noqa: BLE001
            continue
    before = {gv.name_hint for gv, f in mod.functions_items() if _scheduled(f)}
    with database:
        mod = tvm.relax.transform.MetaScheduleApplyDatabase()(mod)
    if report is not None:
        for gv, func in mod.functions_items():
            if _scheduled(func) and gv.name_hint not in before:
                report[gv.name_hint] = "tuned (MetaSchedule database)"
    return mod


def _scheduled(func) -> bool:
    return isinstance(func, tvm.tirx.PrimFunc) and func.attrs is not None and bool(
        func.attrs.get("tirx.is_scheduled"))


def _best_records(database) -> list:
    """The fastest valid schedule of each workload, as plain JSON: {task, hash, trace, run_secs}."""
    best = {}
    for record in database.get_all_tuning_records():
        secs = [float(v) for v in (record.run_secs or [])]
        if not secs or min(secs) >= 1e9:  # failed builds and runs are recorded with 1e10 s
            continue
        key = str(tvm_ffi.structural_hash(record.workload.mod))
        mean = sum(secs) / len(secs)
        if key in best and best[key]["mean"] <= mean:
            continue
        trace = _to_plain(record.trace.as_json(remove_postproc=False))
        best[key] = {"task": record.workload.mod["main"].attrs.get("global_symbol", "main")
                     if record.workload.mod["main"].attrs else "main",
                     "hash": key, "trace": trace, "run_secs": secs, "mean": mean}
    return list(best.values())


def _default_times(database, target, builder, runner) -> dict:
    """{workload hash: mean seconds} of tvm_schedules' rules on each tuned workload, built and run by the
    tuning's own builder and runner. A function the rules leave alone is timed unscheduled."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.target.codegen import llvm_get_vector_width

    from . import tvm_schedules

    bits = llvm_get_vector_width(target)
    bits = bits if bits > 0 else 128
    keys, inputs, args = [], [], []
    for workload in {str(tvm_ffi.structural_hash(r.workload.mod)): r.workload
                     for r in database.get_all_tuning_records()}.items():
        key, mod = workload[0], workload[1].mod
        _rule, scheduled = tvm_schedules.schedule_function(mod["main"], target, bits)
        func = scheduled if scheduled is not None else mod["main"]
        keys.append(key)
        inputs.append(ms.builder.BuilderInput(tvm.IRModule({"main": func}), target))
        args.append(ms.arg_info.ArgInfo.from_prim_func(func))
    if not keys:
        return {}
    if isinstance(builder, str):
        builder = InProcessBuilder()
    if isinstance(runner, str):
        runner = ms.runner.LocalRunner()
    built = builder.build(inputs)
    runs = [ms.runner.RunnerInput(b.artifact_path, "cpu", a)
            for b, a in zip(built, args) if b.artifact_path]
    results = [f.result() for f in runner.run(runs)]
    times, i = {}, 0
    for key, b in zip(keys, built):
        if b.artifact_path:
            secs = [float(v) for v in (results[i].run_secs or [])]
            i += 1
            if secs and results[i - 1].error_msg is None:
                times[key] = sum(secs) / len(secs)
    return times


def _to_plain(value):
    """A trace's JSON form (ffi arrays of strings, numbers, IntImm/FloatImm) as plain JSON; the IR numbers are
    tagged so _from_plain gives the trace back the same objects."""
    if isinstance(value, tvm.tirx.IntImm):
        return {"IntImm": [str(value.ty), int(value.value)]}
    if isinstance(value, tvm.tirx.FloatImm):
        return {"FloatImm": [str(value.ty), float(value.value)]}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if hasattr(value, "__len__"):
        return [_to_plain(v) for v in value]
    raise ValueError(f"cannot store {type(value).__name__} of a tuning trace")


def _from_plain(value):
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("IntImm", "FloatImm"):
        kind, (dtype, number) = next(iter(value.items()))
        return tvm.tirx.IntImm(dtype, number) if kind == "IntImm" else tvm.tirx.FloatImm(dtype, number)
    if isinstance(value, dict):
        return {k: _from_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_plain(v) for v in value]
    return value


def _search(trials: int, tasks: int):
    """MetaSchedule's evolutionary search; with only a few trials per function, a smaller population and one
    round of mutation: its default (512, 4 rounds) takes about a minute per function to pick 2 candidates."""
    from tvm.s_tir import meta_schedule as ms

    if trials >= 16 * tasks:
        return "evolutionary"
    return ms.search_strategy.EvolutionarySearch(population_size=64, genetic_num_iters=1)


def _cost_model() -> str:
    """xgboost's cost model when installed (the tune extra), else random search: fine for a few dozen trials."""
    try:
        import xgboost  # noqa: F401
    except ImportError:
        return "random"
    return "xgb"


try:
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder

    @derived_object
    class InProcessBuilder(PyBuilder):
        """Builds each candidate in this process, one after the other: TVM's LocalBuilder hands IRModules to
        worker processes by pickling them, which goes through ffi.ToJSONGraph (see the module docstring).
        export(runtime module) -> artifact path: TVM's default (a tar the local runner links) or, for a board,
        a .so from the cross compiler (rpc.export_cross)."""

        def __init__(self, export=None) -> None:
            super().__init__()
            self.export = export

        def build(self, build_inputs):
            from tvm.s_tir.meta_schedule.builder import local_builder

            results = []
            for item in build_inputs:
                try:
                    built = local_builder.default_build(item.mod, item.target, None)
                    path = (self.export or local_builder.default_export)(built)
                    results.append(BuilderResult(path, None))
                except Exception as err:  # noqa: BLE001 -- a candidate that fails to build is recorded as such
                    results.append(BuilderResult(None, f"{type(err).__name__}: {err}"[:2000]))
            return results
except ImportError:  # pragma: no cover -- MetaSchedule absent from this TVM build
    InProcessBuilder = None
