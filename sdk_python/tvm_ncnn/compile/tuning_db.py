"""Applying a `tvm-ncnn tune` directory at export: the directory's record file (TUNING_FILE, its one format), the
check that it was tuned for this target and TVM, and MetaScheduleApplyDatabase on the legalized module: a function
the database has takes its tuned schedule (marked scheduled, so compile/schedules.py's rules skip it), the rest
keep their default rule. MetaSchedule's database does not record the target a schedule was measured on, so the
directory does, and export refuses a directory tuned for another target.

Records are stored as plain JSON (each record's trace, keyed by the structural hash of its function): with the
pinned apache-tvm-ffi, ffi.ToJSONGraph crashes on TVM IR (tune/search.py), so MetaSchedule's own JSON database
cannot be used; export rebuilds the records against the functions of its own legalized module, which are the
same."""

from __future__ import annotations

import json
import os

import tvm
import tvm_ffi

from ..errors import ModelError

TUNING_FILE = "tvm_ncnn_tuning.json"  # what was tuned, for which target, and the best schedule of each function


def check_tuning_dir(path, device) -> str:
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
        if not isinstance(func, tvm.tirx.PrimFunc) or scheduled(func):
            continue
        workload_mod = ms.tune_context._normalize_mod(func)
        record = records.get(str(tvm_ffi.structural_hash(workload_mod)))
        if record is None:
            continue
        workload = database.commit_workload(workload_mod)
        try:  # the trace replays on the function; one that no longer applies is left to the default rules
            database.commit_tuning_record(ms.database.TuningRecord.from_json(
                tvm.runtime.convert([from_plain(record["trace"]), record["run_secs"], target.export(), None]),
                workload))
        except Exception:  # noqa: BLE001
            continue
    before = {gv.name_hint for gv, f in mod.functions_items() if scheduled(f)}
    with database:
        mod = tvm.relax.transform.MetaScheduleApplyDatabase()(mod)
    if report is not None:
        for gv, func in mod.functions_items():
            if scheduled(func) and gv.name_hint not in before:
                report[gv.name_hint] = "tuned (MetaSchedule database)"
    return mod


def scheduled(func) -> bool:
    return isinstance(func, tvm.tirx.PrimFunc) and func.attrs is not None and bool(
        func.attrs.get("tirx.is_scheduled"))


def to_plain(value):
    """A trace's JSON form (ffi arrays of strings, numbers, IntImm/FloatImm) as plain JSON; the IR numbers are
    tagged so from_plain gives the trace back the same objects."""
    if isinstance(value, tvm.tirx.IntImm):
        return {"IntImm": [str(value.ty), int(value.value)]}
    if isinstance(value, tvm.tirx.FloatImm):
        return {"FloatImm": [str(value.ty), float(value.value)]}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(k): to_plain(v) for k, v in value.items()}
    if hasattr(value, "__len__"):
        return [to_plain(v) for v in value]
    raise ValueError(f"cannot store {type(value).__name__} of a tuning trace")


def from_plain(value):
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("IntImm", "FloatImm"):
        kind, (dtype, number) = next(iter(value.items()))
        return tvm.tirx.IntImm(dtype, number) if kind == "IntImm" else tvm.tirx.FloatImm(dtype, number)
    if isinstance(value, dict):
        return {k: from_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_plain(v) for v in value]
    return value
