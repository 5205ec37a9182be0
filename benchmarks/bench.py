"""tvm-ncnn against the systems people use today, every system measured in the same run, interleaved.

For each model of the suite and each thread count, in one run:

  tvm-ncnn        the exported model.so, run by deploy_app (C++)
  tvm-ncnn-py     the same model.so through the Python loader, tvm_ncnn.load
  native-ncnn     the same network converted by pnnx, run by ncnn_bench (benchmarks/ncnn_bench.cc, built by the
                  normal build into <build>/benchmarks/): C++, linked against the SAME vendored ncnn as the
                  runtime, with the runtime's ncnn options and deploy_app's timing loop. The ratio to it is
                  tvm-ncnn's own overhead (ratio_to_native_ncnn).
  native-ncnn-py  the pnnx network in the ncnn PyPI wheel (a second reference: another build of ncnn)
  tvm-alone       model.so exported with --no-offload (everything compiled by TVM, with the default schedules of
                  tvm_ncnn/compile/schedules.py), run by deploy_app
  tvm-alone-unscheduled  the same exported with TVM_NCNN_SCHEDULES=0 (TVM's unscheduled code): only when named
                  in --systems; slow, so it runs --tvm-repeat times per round
  onnxruntime     the ONNX model in onnxruntime (CPU provider)
  tvm-ncnn-int8, native-ncnn-int8, onnxruntime-int8  with --photos DIR (calibration photos): the int8 forms of
                  the three (bench_int8.py), each also printed as its speed-up over its fp32 system, paired by round

Every system runs in its own process (no two OpenMP runtimes in one process; the RSS is the system's own) and
gets the same threading environment (--wait-policy). The repeats are split into --rounds; each round runs every
system once, in a new random order, so machine load that comes and goes hits all of them alike. p50/p90 are
over all timed runs of all rounds; the first run after loading is reported apart (first_ms), as is load_ms.
ratio_to_native_ncnn is the median over rounds of (p50 of the system / p50 of native ncnn in that round);
ratio_to_onnxruntime likewise against onnxruntime (the "x ort" column).
Absolute times drift on a shared machine: compare the ratios, and repeat a run before believing a small one.

The parts: bench_systems.py (the systems, how one measurement of each starts; bench_worker.py runs the Python
ones), bench_models.py (a model in every system's form), bench_measure.py (interleaved rounds, leak check),
bench_threads.py (--threads-study), bench_report.py (table and plot); this file: the command line and the rows.

Writes benchmarks/results.json (a list of rows: model, threads, system, p50_ms, p90_ms, rss_mb, ratio_to_native_ncnn
and more; see ROW_FIELDS) and a plot (benchmarks/results.png).

  .venv/bin/python benchmarks/bench.py                      # the suite, 1 and 2 threads
  .venv/bin/python benchmarks/bench.py --quick              # CI: two small models, few runs, no timing claims
  .venv/bin/python benchmarks/bench.py --busy 1             # the same with one core kept busy by another process
  .venv/bin/python benchmarks/bench.py --threads-study      # ncnn regions alternating with TVM ops: threading
  .venv/bin/python benchmarks/bench.py --leak-runs 1000     # + RSS growth over 1000 runs (deploy_app, ncnn_bench)
  .venv/bin/python benchmarks/bench.py --photos DIR --threads 1 # + int8 (tvm-ncnn, native ncnn, onnxruntime)
  .venv/bin/python benchmarks/bench.py --one-shot --rounds 5 # load + first run and peak RSS of fresh processes
                                                            # (bench_oneshot.py; writes benchmarks/oneshot.json)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_measure import leak_check, machine_load, measure
from bench_models import prepare
from bench_oneshot import DEFAULT_ONE_SHOT_SYSTEMS, one_shot, print_one_shot
from bench_report import plot, print_table
from bench_int8 import add_speedups, prepare_int8, print_speedups
from bench_systems import DEFAULT_SYSTEMS, INT8_SYSTEMS, ROOT, SYSTEMS, check_built
from bench_threads import threads_study

SUITE = ["mobilenetv2", "resnet18", "squeezenet", "shufflenetv2", "efficientnet-lite0", "alexnet"]
# the modern families (tvm_ncnn/zoo/modern.py): --models modern, or any of their names
MODERN = ["vit_tiny_patch16_224", "mobilevit_xs", "efficientformerv2_s0", "convnext_femto", "edgenext_x_small",
          "fastvit_t8", "levit_128s", "efficientvit_m0", "yolov8n", "yolo11n"]
QUICK = ["squeezenet", "mobilenetv2"]
# Every row of results.json has these; tvm-ncnn rows also ratio_to_native_ncnn (all rows do, when the
# native-ncnn reference ran).
ROW_FIELDS = ["model", "threads", "system", "p50_ms", "p90_ms", "rss_mb", "steady_rss_mb", "load_ms", "first_ms",
              "runs", "rounds", "max_rel_err", "wait_policy"]
# OpenMP (libgomp) settings per --wait-policy; onnxruntime's own pool is told the same.
from tvm_ncnn.runtime.native import spin_counts  # noqa: E402

# GOMP_SPINCOUNT and TVM_THREAD_POOL_SPIN_COUNT as deploy_app sets them on this machine, from their one owner (the
# runtime's thread policy, runtime/src/threads/thread_policy.cc), read without loading the runtime here.
DEFAULT_SPINCOUNT, DEFAULT_TVM_SPINCOUNT = spin_counts()
# --wait-policy: the threading environment every system gets (TVM_NUM_THREADS = the thread count, except libgomp).
WAIT_POLICIES = {
    # what deploy_app sets by itself: nothing for libgomp -- TVM's loops run on ncnn's OpenMP threads
    # (runtime/src/threads/tvm_on_openmp.cc), which wait as libgomp does by default, as native ncnn does
    "deploy_app": {},
    # before: TVM's own pool beside libgomp's, both with short spins (TVM_NCNN_TVM_POOL=tvm still gives it)
    "two-pools": {"TVM_NCNN_TVM_POOL": "tvm", "GOMP_SPINCOUNT": str(DEFAULT_SPINCOUNT),
                  "TVM_THREAD_POOL_SPIN_COUNT": str(DEFAULT_TVM_SPINCOUNT)},
    # short spins for every system, native ncnn included
    "short-spin": {"GOMP_SPINCOUNT": str(DEFAULT_SPINCOUNT), "TVM_THREAD_POOL_SPIN_COUNT": str(DEFAULT_TVM_SPINCOUNT)},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", "TVM_THREAD_POOL_SPIN_COUNT": "0"},
    "libgomp": {},  # the OpenMP runtime's and TVM's own defaults (long spins); now what deploy_app does
}
THREAD_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TVM_NUM_THREADS", "TVM_THREAD_POOL_SPIN_COUNT",
               "TVM_NCNN_TVM_POOL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(SUITE))
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeat", type=int, default=100, help="timed runs per system, split over the rounds")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--tvm-repeat", type=int, default=1,
                        help="timed runs of tvm-alone-unscheduled per round (slow)")
    parser.add_argument("--systems", default=None,
                        help=f"comma-separated, of {','.join(SYSTEMS)} (default: all but tvm-alone-unscheduled)")
    parser.add_argument("--photos", default=None,
                        help="calibration photos (JPEG/PNG): adds the int8 systems (bench_int8.py) and prints each "
                             "one's speed-up over its fp32 system")
    parser.add_argument("--no-tvm", action="store_true", help="skip tvm-alone (TVM compiling the whole model)")
    parser.add_argument("--wait-policy", choices=sorted(WAIT_POLICIES), default="deploy_app",
                        help="threading environment for every system (default: what deploy_app sets by itself)")
    parser.add_argument("--busy", type=int, default=0,
                        help="busy processes running alongside every measurement (1: one core kept busy by another "
                             "process, as other work on a device would)")
    parser.add_argument("--leak-runs", type=int, default=0, help="also measure RSS growth over this many runs")
    parser.add_argument("--quick", action="store_true", help="CI: two small models, 1 thread, few runs")
    parser.add_argument("--threads-study", action="store_true", help="only the threading study")
    parser.add_argument("--one-shot", action="store_true",
                        help="fresh processes that load and run once, --rounds of them per system: load, first run, "
                             "load + first and peak RSS against native ncnn (default systems "
                             f"{','.join(DEFAULT_ONE_SHOT_SYSTEMS)}; writes oneshot.json)")
    parser.add_argument("--contention", default="0,1",
                        help="threading study: busy processes running alongside, per scenario (default 0,1)")
    parser.add_argument("--output", default=None, help="default benchmarks/results.json (--one-shot: oneshot.json)")
    parser.add_argument("--plot", default=None, help="PNG path (default: next to --output, .png)")
    parser.add_argument("--keep", default=None, help="keep the exported models in this directory")
    args = parser.parse_args()

    if args.quick:
        args.models, args.threads, args.repeat, args.rounds = ",".join(QUICK), "1", 4, 2
    if args.systems is None:
        args.systems = ",".join(DEFAULT_ONE_SHOT_SYSTEMS if args.one_shot else
                                DEFAULT_SYSTEMS + (INT8_SYSTEMS if args.photos else []))
    if args.output is None:
        args.output = str(ROOT / "benchmarks" / ("oneshot.json" if args.one_shot else "results.json"))
    check_built()
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(WAIT_POLICIES[args.wait_policy])
    env["TVM_NCNN_WAIT_POLICY"] = "inherit"  # deploy_app: use exactly the environment given (no default of its own)
    env["BENCH_WAIT_POLICY"] = args.wait_policy
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT / "sdk_python")]))

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tvm_ncnn_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    # At normal priority, started before the models are prepared and killed at the end.
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        if args.threads_study:
            rows = threads_study(args, env, workdir, DEFAULT_SPINCOUNT, DEFAULT_TVM_SPINCOUNT)
            out = Path(args.output).with_name("threads.json") if not args.output.endswith("threads.json") \
                else Path(args.output)
            out.write_text(json.dumps({"machine": machine_load(), "rows": rows}, indent=1) + "\n")
            print(f"wrote {out}")
            return 0
        return one_shot_suite(args, env, workdir) if args.one_shot else suite(args, env, workdir)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def suite(args, env: dict, workdir: Path) -> int:
    systems = [s for s in args.systems.split(",") if s]
    if args.no_tvm:
        systems = [s for s in systems if not s.startswith("tvm-alone")]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown system(s) {sorted(unknown)}; choose from {SYSTEMS}")
    print(f"machine: {machine_load()}; threading environment '{args.wait_policy}' "
          f"({WAIT_POLICIES[args.wait_policy] or 'runtime defaults'}); {args.busy} busy process(es); "
          f"{args.rounds} rounds", flush=True)
    rows = []
    models = args.models.replace("modern", ",".join(MODERN)).split(",")
    for name in models:
        m = prepare(name, workdir, "tvm-alone" in systems, "tvm-alone-unscheduled" in systems)
        if any(s in INT8_SYSTEMS for s in systems):
            if not args.photos:
                raise SystemExit("the int8 systems need --photos DIR (calibration photos)")
            prepare_int8(m, args.photos, workdir)
            print(f"{name}: int8 export {m['int8_export_s']:.1f} s ({m['int8_layers']} layers int8), onnxruntime "
                  f"quantize_static {m['ort_int8_s']:.1f} s", flush=True)
        print(f"{name}: export {m['export_s']:.1f} s ({m['so_mb']:.0f} MB; {100 * m['ncnn_flops_share']:.1f}% of "
              f"FLOPs in {m['regions']} ncnn region(s)), --no-offload export {m.get('tvm_export_s', 0):.1f} s, "
              f"pnnx {m['pnnx_s']:.1f} s" + (f", unscheduled --no-offload export {m['tvm_unscheduled_export_s']:.1f} s"
                                             if "tvm_unscheduled_export_s" in m else ""), flush=True)
        leaks = leak_check(m, args.leak_runs, env, workdir) if args.leak_runs else {}
        for threads in [int(t) for t in args.threads.split(",")]:
            stats = measure(m, threads, systems, args.repeat, args.rounds, env, workdir, args.tvm_repeat)
            wheel = stats.get("native-ncnn-py", {}).get("p50_ms")
            # The reference: native ncnn in C++ on the same vendored ncnn; the wheel where that cannot run.
            reference = next((r for r in ("native-ncnn", "native-ncnn-py") if stats.get(r, {}).get("p50_ms")), None)
            native = stats[reference]["p50_ms"] if reference else None
            for system in systems:
                s = stats[system]
                row = {"model": name, "threads": threads, "system": system, **s, "wait_policy": args.wait_policy,
                       "busy": args.busy}
                if "error" in s:
                    rows.append(row)
                    continue
                if native:
                    # Paired by round (measured minutes apart at most), then the median: a burst of load on the
                    # machine during one system's turn moves one round ratio, not the result.
                    row["round_ratios"] = [a / b for a, b in zip(s["round_p50_ms"], stats[reference]["round_p50_ms"])]
                    row["ratio_to_native_ncnn"] = statistics.median(row["round_ratios"])
                    row["ratio_of_pooled_p50"] = s["p50_ms"] / native
                    row["native_reference"] = reference
                if wheel:
                    row["ratio_to_ncnn_wheel"] = s["p50_ms"] / wheel
                if stats.get("onnxruntime", {}).get("p50_ms"):
                    row["ratio_to_onnxruntime"] = statistics.median(
                        a / b for a, b in zip(s["round_p50_ms"], stats["onnxruntime"]["round_p50_ms"]))
                if system == reference and stats.get("tvm-ncnn", {}).get("steady_rss_mb"):
                    row["tvm_ncnn_steady_rss_ratio"] = stats["tvm-ncnn"]["steady_rss_mb"] / s["steady_rss_mb"]
                if system == "tvm-ncnn":
                    row.update(export_s=m["export_s"], so_mb=m["so_mb"], ncnn_regions=m["regions"],
                               ncnn_flops_share=m["ncnn_flops_share"])
                if system == "tvm-alone":
                    row["export_s"] = m["tvm_export_s"]
                if system == "tvm-alone-unscheduled":
                    row["export_s"] = m["tvm_unscheduled_export_s"]
                if system == "native-ncnn":
                    row["export_s"] = m["pnnx_s"]  # pnnx conversion
                if threads == 1 and system in leaks:
                    row.update(leaks[system])
                rows.append(row)
            add_speedups([r for r in rows if r["model"] == name and r["threads"] == threads], stats)
            print_table([r for r in rows if r["model"] == name and r["threads"] == threads])
            print_speedups([r for r in rows if r["model"] == name and r["threads"] == threads])
            print(f"  ({machine_load()})", flush=True)
            Path(args.output).write_text(json.dumps(rows, indent=1) + "\n")  # partial results survive a failure
    print()
    print_table(rows)
    print_speedups(rows)
    Path(args.output).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.output}")
    png = args.plot or str(Path(args.output).with_suffix(".png"))
    plot(rows, png)
    print(f"wrote {png}")
    return 0


def one_shot_suite(args, env: dict, workdir: Path) -> int:
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown system(s) {sorted(unknown)}; choose from {SYSTEMS}")
    print(f"machine: {machine_load()}; one-shot, {args.rounds} fresh processes per system", flush=True)
    rows = []
    for name in args.models.replace("modern", ",".join(MODERN)).split(","):
        m = prepare(name, workdir, "tvm-alone" in systems, "tvm-alone-unscheduled" in systems)
        print(f"{name}: export {m['export_s']:.1f} s ({m['so_mb']:.0f} MB)", flush=True)
        for threads in [int(t) for t in args.threads.split(",")]:
            stats = one_shot(m, threads, systems, args.rounds, env, workdir)
            block = [{"model": name, "threads": threads, "system": s, **stats[s], "wait_policy": args.wait_policy}
                     for s in systems]
            rows += block
            print_one_shot(block)
            print(f"  ({machine_load()})", flush=True)
            Path(args.output).write_text(json.dumps(rows, indent=1) + "\n")
    print()
    print_one_shot(rows)
    Path(args.output).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
