"""The tvm-ncnn command: export, inspect, run, zoo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

from . import options as cli_types
from ..errors import ModelError
from ..int8 import calibration
from ..meta import postprocess, precision


class UsageError(Exception):
    """A wrong combination of arguments: one line, exit code 2 (as argparse's own errors)."""


def cmd_export(args) -> int:
    from ..exporter.api import Preprocess, TvmFallbackWarning, export
    from ..frontend.importer import DefaultBatchWarning

    pre = Preprocess(mean=args.mean, std=args.std, color=args.color, resize=args.resize, size=args.size,
                     stride=args.stride, min_width=args.min_width, max_width=args.max_width)
    task = _task(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TvmFallbackWarning)
        result = export(args.model, args.output, target=args.target, input_shapes=dict(args.input or []),
                        labels=args.labels, preprocess=pre, offload=not args.no_offload, precision=args.precision,
                        task=task, sign=args.sign, calibration=_calibration(args),
                        tuning=args.tuning, verify=not args.no_verify)
    for warning in caught:
        if issubclass(warning.category, TvmFallbackWarning):
            print(f"tvm-ncnn: warning: {warning.message}", file=sys.stderr)
        elif issubclass(warning.category, DefaultBatchWarning):
            print(f"tvm-ncnn: note: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    r = result.report
    size = os.path.getsize(result.path) / 1e6
    print(f"wrote {result.path} ({size:.1f} MB, target {result.target}) in {result.seconds:.1f} s: "
          f"{r.ncnn_ops}/{len(r.ops)} ops in {r.regions} ncnn region(s), "
          f"{100 * r.ncnn_flops_share:.1f}% of FLOPs in ncnn"
          + (f", signed by {result.signer}" if result.signer else ""))
    print(recorded_text(result.recorded))
    if result.int8:
        print(result.int8["text"])
    return 0


def recorded_text(recorded: dict) -> str:
    """The preprocessing and post-processing export recorded, and where each came from."""
    from ..format.describe import preprocess_lines

    return "\n".join(f"  {key:<11}{value}" for key, value in preprocess_lines(recorded))


def _calibration(args):
    """--calibration and its options -> int8.calibrate.Calibration (None without --calibration)."""
    if args.calibration is None:
        return None
    from ..int8.calibrate import Calibration

    keep = [name for item in args.keep_fp32 or [] for name in item.split(",") if name]
    return Calibration(args.calibration, args.calibration_method, keep, args.min_cosine)


def cmd_tune(args) -> int:
    from .tune import run_tune_command

    return run_tune_command(args)


def cmd_bench(args) -> int:
    from .bench import bench

    if not args.rpc_tracker or not args.rpc_key:
        raise UsageError("bench times model.so on a board: give --rpc-tracker HOST:PORT and --rpc-key KEY "
                         "(on this machine: deploy_app model.so INPUT --json)")
    result = bench(args.model, args.rpc_tracker, args.rpc_key, args.input, args.threads or 0, args.repeat,
                   args.precision or "")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model} on '{args.rpc_key}': load {result['load_ms']:.1f} ms, first run "
              f"{result['first_ms']:.1f} ms, p50 {result['p50_ms']:.2f} ms, p90 {result['p90_ms']:.2f} ms "
              f"({result['repeat']} runs, {result['threads']} thread(s), precision {result['precision']})")
    return 0


def cmd_keygen(args) -> int:
    from ..format import signing

    fingerprint = signing.keygen(args.key)
    print(f"wrote {args.key} (private: keep it on this machine, mode 0600) and {args.key}.pub (public: copy it to "
          f"the devices, deploy_app --trust {args.key}.pub), key {fingerprint}")
    return 0


def _task(args):
    """--task and its options -> tasks.Task, or None to let export recognise the model."""
    from ..meta.postprocess import Task, parse_strides

    detail = [args.layout, args.score, args.iou, args.strides, args.keypoints]
    if args.task is None and all(v is None for v in detail):
        return None
    keypoints = None
    if args.keypoints is not None:
        try:
            count, dims = (int(v) for v in args.keypoints.split(","))
        except ValueError:
            raise ModelError(f"--keypoints '{args.keypoints}' is not COUNT,DIMS (e.g. 17,3)") from None
        keypoints = (count, dims)
    return Task(task=args.task or "detect", layout=args.layout, score=args.score, iou=args.iou,
                strides=parse_strides(args.strides) if args.strides else None, keypoints=keypoints)


def cmd_inspect(args) -> int:
    from ..format.describe import describe, describe_text
    from ..inspection import inspect, is_model_so

    if is_model_so(args.model):
        # Read from the file's bytes, never loaded: a model.so for a Pi inspects here too (format/model_file.py).
        if args.input:
            raise UsageError(f"--input sets the shapes of a model to export; {args.model} is exported, its shapes "
                             f"are fixed (they are listed without --input)")
        info = describe(args.model)
        if args.json:
            print(json.dumps(info))
            return 0
        print(describe_text(info))
        if info.get("partition", {}).get("ops"):
            print("\n" + inspect(args.model).table())
        return 0
    report = inspect(args.model, input_shapes=dict(args.input or []))
    print(json.dumps({"source": args.model, "partition": report.to_json()}) if args.json
          else report.table())
    return 0


def cmd_run(args) -> int:
    from ..runtime import native
    from . import run_outputs
    from ..runtime.model import load

    model = load(args.model, threads=args.threads, precision=args.precision, trust=args.trust)
    names = [o["name"] for o in model.outputs]
    refused = run_outputs.check_output_file(args.output, names)
    if refused:  # before the run, as deploy_app
        raise UsageError(refused)
    x = _read_input(args.input, model)
    start = time.perf_counter()
    outputs = model(x)
    elapsed = (time.perf_counter() - start) * 1e3
    if args.output:
        run_outputs.save(args.output, names, outputs)
    # The runtime's scoring, so that this prints what deploy_app prints for the same output; only of class scores.
    task = run_outputs.task_of(model.info)
    scored = native.top_k(outputs[0], model.labels, args.topk) \
        if run_outputs.class_scores(task, outputs[0]) else None
    profile = model.profile(x, repeat=args.repeat) if args.profile else None
    if args.json:
        print(json.dumps(_run_json(args, model, x, outputs, scored, elapsed, profile)))
        return 0
    for name, y in zip(names, outputs):
        print(f"output   '{name}' {run_outputs.shape_text(y)} {y.dtype}")
    if scored is None:
        print(run_outputs.not_class_scores_line(task, names, outputs))
    else:
        print(f"top-{len(scored['classes'])}    {scored['description']}")
        for rank, (index, label, score) in enumerate(scored["classes"], 1):
            print(f"  {rank:2d}. {score:9.6f}  [{index}] {label}")
    print(f"{elapsed:.1f} ms, {model.threads} thread(s), precision {model.precision}")
    if profile is not None:
        print(profile, end="")
    return 0


def _run_json(args, model, x, outputs, scored, elapsed, profile) -> dict:
    """`tvm-ncnn run --json`: deploy_app --json's names where they mean the same."""
    spec = model.inputs[0]
    doc = {
        "model": args.model,
        "input": {"path": args.input, "kind": "npy" if args.input.lower().endswith(".npy") else "image",
                  "name": spec["name"], "shape": list(x.shape), "dtype": str(x.dtype)},
        "outputs": [{"name": o["name"], "shape": list(y.shape), "dtype": str(y.dtype)}
                    for o, y in zip(model.outputs, outputs)],
        "threads": model.threads,
        "precision": model.precision,
        "run_ms": round(elapsed, 3),
        "scores": scored["kind"] if scored else None,  # no top-k of what is not class scores
    }
    if scored:
        doc["topk"] = [{"index": i, "label": label, "score": score} for i, label, score in scored["classes"]]
    if args.output:
        doc["output_file"] = args.output
    if profile is not None:
        doc["profile_run_ms"] = profile.run_ms
        doc["profile"] = profile.rows
    return doc


def cmd_zoo(args) -> int:
    from .. import zoo

    paths = zoo.write(args.name, args.output)
    spec = zoo.MODELS[args.name]
    print(f"wrote {paths['model']}, {paths['labels']}, {paths['image']}")
    print("export it with:\n  tvm-ncnn export " + paths["model"] + " -o model.so --labels " + paths["labels"]
          + " --mean " + ",".join(f"{v:g}" for v in spec.mean) + " --std " + ",".join(f"{v:g}" for v in spec.std))
    return 0


def _read_input(path: str, model) -> np.ndarray:
    if path.lower().endswith(".npy"):
        try:
            return np.load(path)
        except (OSError, ValueError) as err:
            raise ModelError(f"{path}: not a readable .npy file ({err})") from None
    return model.load_image(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tvm-ncnn", description=__doc__)
    parser.add_argument("--version", action=cli_types.Version, help="print the SDK, TVM and ncnn versions")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a model (.onnx, .pt2) to one model.so")
    p.add_argument("model")
    p.add_argument("-o", "--output", default="model.so")
    p.add_argument("--target", default="host", help="host, rpi4, rpi5 or aarch64")
    p.add_argument("--input", action="append", type=cli_types.input_shape, metavar="NAME:1,3,224,224",
                   help="an input's shape (repeat for several): numbers pin sizes, names leave them dynamic "
                        "(NAME:1,3,H,W; bounded: H=32..1280)")
    p.add_argument("--labels", help="text file, one class label per line")
    p.add_argument("--mean", type=cli_types.floats3,
                   help="R,G,B in pixel units (0..255), e.g. ImageNet 123.675,116.28,103.53 (0..1 units are refused; "
                        "default: what the model's metadata says (ultralytics: 0), else 0)")
    p.add_argument("--std", type=cli_types.floats3,
                   help="R,G,B in pixel units (0..255), e.g. ImageNet 58.395,57.12,57.375 (default: the model's "
                        "metadata (ultralytics: 255), else 1)")
    p.add_argument("--color", choices=["RGB", "BGR"], help="channel order the model expects (default RGB)")
    p.add_argument("--resize", metavar="MODE",
                   help="how an image is fitted to the input (bilinear): stretch; crop[:PCT]: shorter side to H/PCT, "
                        "centre cut, as timm/torchvision evaluate (PCT 0.875); letterbox[:PAD][:topleft]: fit whole, "
                        "border of pixel value PAD (114), centred as ultralytics or top-left as YOLOX (default: "
                        "the model's metadata (ultralytics: letterbox:114), else stretch). A dynamic H x W: "
                        "letterbox to --size, padded to a --stride multiple (ultralytics auto=True); height[:PAD]: "
                        "text recognisers, the input's height, width from the image; limit[:min|max]: DBNet text "
                        "detectors, the short (min) or long (max) side to --size, sides to --stride multiples")
    for flag, text in [("--size", "dynamic input: letterbox's long side (ultralytics imgsz; default its metadata, "
                                  "else 640) or limit's side (default 736 for min, 960 for max)"),
                       ("--stride", "dynamic input: each dynamic side a multiple of it (default: ultralytics' "
                                    "stride, else the input's dynamic multiple)"),
                       ("--min-width", "resize height: the narrowest input width (default: the input's minimum; "
                                       "PaddleOCR/rapidocr: 320 for height 48)"),
                       ("--max-width", "resize height: the widest input width, a longer line is squeezed (default: "
                                       "the input's maximum, at most 1280)")]:
        p.add_argument(flag, type=int, metavar="N", help=text)
    p.add_argument("--no-offload", action="store_true", help="compile everything with TVM (reference)")
    p.add_argument("--no-verify", action="store_true",
                   help="write model.so without checking it against onnxruntime / torch / TVM alone (recorded)")
    p.add_argument("--task", choices=postprocess.TASKS,
                   help="what the outputs are, for deploy_app and detect() (default: recognised for ultralytics "
                        "YOLOv8/11 and PicoDet graphs, else none)")
    p.add_argument("--layout", choices=postprocess.LAYOUTS,
                   help="detector output layout (default: recognised, see --task)")
    p.add_argument("--score", type=float, help="default score threshold, 0..1 (the layout's own by default)")
    p.add_argument("--iou", type=float, help="default NMS IoU threshold, 0..1 (the layout's own by default)")
    p.add_argument("--strides", help="yolox/picodet feature strides, e.g. 8,16,32")
    p.add_argument("--keypoints", help="pose: keypoints per detection and values per keypoint, e.g. 17,3")
    p.add_argument("--precision", choices=precision.PRECISIONS, default=precision.DEFAULT,
                   help="fp16 (default): ncnn's fp16 kernels where the CPU has fp16 arithmetic (Pi 5), fp32 "
                        "elsewhere; fp32 everywhere; int8: calibrated int8 layers (needs --calibration)")
    p.add_argument("--calibration", metavar="DIR", help="int8: images (preprocessed as the model's metadata says) "
                   "or .npy inputs; every 5th file is held out for the accuracy report")
    p.add_argument("--calibration-method", choices=calibration.METHODS, default="kl",
                   help="int8 activation scales: kl (default, KL divergence), aciq, eq (ncnn2table's methods)")
    p.add_argument("--keep-fp32", action="append", metavar="LAYERS",
                   help="int8: layers to leave fp32, comma-separated: names (from the export report or inspect), "
                        "layer types (InnerProduct), 'auto' (the default: the most sensitive until --min-cosine "
                        "holds), or 'none' (every layer int8)")
    p.add_argument("--min-cosine", type=float, default=0.99,
                   help="int8 auto mode: the lowest cosine similarity to fp32 each region output may have "
                        "(default 0.99)")
    p.add_argument("--sign", metavar="KEY", help="sign model.so with this private key (tvm-ncnn keygen), for "
                                                 "runtimes given --trust KEY.pub")
    p.add_argument("--tuning", metavar="DIR", help="apply the schedules tvm-ncnn tune wrote to DIR for this target")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tune", help="tune what TVM compiles of a model with MetaSchedule (optional; README Tuning)")
    p.add_argument("model")
    p.add_argument("-o", "--output", default="tuning", help="directory for the tuning records (default tuning/)")
    p.add_argument("--target", default="host", help="host, rpi4, rpi5 or aarch64")
    p.add_argument("--trials", type=int, default=64, help="measured candidates in all (default 64)")
    p.add_argument("--input", action="append", type=cli_types.input_shape, metavar="NAME:1,3,224,224")
    p.add_argument("--no-offload", action="store_true", help="tune the whole model in TVM (as export --no-offload)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="measure on the boards of this RPC tracker")
    p.add_argument("--rpc-key", metavar="KEY", help="the boards' key at the tracker (e.g. rpi4)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("bench", help="time model.so on a board through an RPC tracker (p50/p90 as deploy_app)")
    p.add_argument("model")
    p.add_argument("input", nargs="?", help="image or .npy (default: zeros of the input shape)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT")
    p.add_argument("--rpc-key", metavar="KEY")
    p.add_argument("--threads", type=int, help="threads on the board (default: its big cores)")
    p.add_argument("--repeat", type=int, default=10, help="timed runs after the first (default 10)")
    p.add_argument("--precision", choices=precision.LOAD_PRECISIONS)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("keygen", help="make an Ed25519 key pair to sign model.so files: KEY (private) and KEY.pub")
    p.add_argument("key", metavar="KEY")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("inspect", help="what a model.so holds (any target), or where each op of a model "
                                       "would run (ncnn / TVM) and why")
    p.add_argument("model", help="a model file or an exported model.so")
    p.add_argument("--input", action="append", type=cli_types.input_shape, metavar="NAME:1,3,224,224",
                   help="static shape for an input of a model file (not of a model.so)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("run", help="run model.so on an image or a .npy tensor on this machine")
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("--output", help="save the outputs: FILE.npz holds each as NAME.npy; a .npy holds the one "
                   "output of a one-output model")
    p.add_argument("--threads", type=cli_types.threads, help="threads (default: the big cores of this machine)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--profile", action="store_true",
                   help="then time each ncnn region and TVM function over --repeat runs (as deploy_app --profile)")
    p.add_argument("--repeat", type=cli_types.runs, default=10, help="profiled runs (default 10)")
    p.add_argument("--precision", choices=precision.LOAD_PRECISIONS,
                   help="run the layers that are not int8 at this precision instead of the exported one")
    p.add_argument("--trust", metavar="KEY.pub", help="refuse model.so unless this public key signed it")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("zoo", help="write an example model (ONNX), ImageNet labels and a photo")
    p.add_argument("name", help="efficientnet-lite0 (pretrained), mobilenetv2, resnet18, squeezenet, ...")
    p.add_argument("-o", "--output", default="zoo")
    p.set_defaults(func=cmd_zoo)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"tvm-ncnn: error: {err}", file=sys.stderr)
        return 2
    except ModelError as err:
        print(f"tvm-ncnn: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `tvm-ncnn inspect model.so | head`: the reader has what it wanted, as with cat
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0
    except OSError as err:  # a file the command reads or writes: one line, not a traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"tvm-ncnn: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1

