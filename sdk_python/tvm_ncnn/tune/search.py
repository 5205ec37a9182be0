"""`tvm-ncnn tune MODEL -o tuning/ --target T --trials N`: MetaSchedule on the part of a model left to TVM.

It imports and partitions the model exactly as export does (compile/lower.py's tvm_part: the ncnn regions are
already external calls, so they are not tuned), legalizes and fuses it as the export pipeline does
(compile/schedules.py), and hands those TIR functions to MetaSchedule's tune_relax. On the host the candidates are
built and timed here (TVM's local runner); for a board they are cross-compiled to .so files here and timed on the
board through TVM's RPC tracker (rpc.py) -- never with relax.transform.MetaScheduleTuneIRMod, which always uses
the local runner. `tvm-ncnn export --tuning tuning/` applies the result (compile/tuning_db.py).

Serialization: with apache-tvm-ffi 0.1.15 (the pinned one) ffi.ToJSONGraph segfaults on every TVM IR object
(tvm.ir.save_json(PrimType("int32")) crashes; 0.1.14 works), and MetaSchedule's JSON database and its builder's
worker processes (which pickle IRModules) both go through it. So candidates are built in this process
(builder.py), records are kept in a MemoryDatabase, and the directory stores each record as its trace (plain
JSON, compile/tuning_db.py); `tvm-ncnn tune` itself runs where serialization works (cli/tune.py)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import tvm
import tvm_ffi

from tvm.s_tir import meta_schedule as ms
from tvm.target.codegen import llvm_get_vector_width

from ..compile import schedules
from ..compile.lower import tvm_part
from ..compile.targets import DeviceTarget, get_target
from ..compile.tuning_db import TUNING_FILE, check_tuning_dir, to_plain
from ..errors import ModelError
from ..frontend.importer import import_model
from . import rpc
from .builder import InProcessBuilder



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
    mod = schedules.legalized(mod, tvm_target)
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
        trace = to_plain(record.trace.as_json(remove_postproc=False))
        best[key] = {"task": record.workload.mod["main"].attrs.get("global_symbol", "main")
                     if record.workload.mod["main"].attrs else "main",
                     "hash": key, "trace": trace, "run_secs": secs, "mean": mean}
    return list(best.values())


def _default_times(database, target, builder, runner) -> dict:
    """{workload hash: mean seconds} of compile/schedules.py's rules on each tuned workload, built and run by the
    tuning's own builder and runner. A function the rules leave alone is timed unscheduled."""
    bits = llvm_get_vector_width(target)
    bits = bits if bits > 0 else 128
    keys, inputs, args = [], [], []
    for workload in {str(tvm_ffi.structural_hash(r.workload.mod)): r.workload
                     for r in database.get_all_tuning_records()}.items():
        key, mod = workload[0], workload[1].mod
        _rule, scheduled = schedules.schedule_function(mod["main"], target, bits)
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


def _search(trials: int, tasks: int):
    """MetaSchedule's evolutionary search; with only a few trials per function, a smaller population and one
    round of mutation: its default (512, 4 rounds) takes about a minute per function to pick 2 candidates."""
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


