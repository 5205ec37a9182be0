"""What a model.so holds, read from its bytes (model_file.py) and never loaded, so a model.so exported for
another CPU describes here too: `tvm-ncnn inspect model.so` and tvm_ncnn.read_metadata."""

from __future__ import annotations

from ..meta.precision import describe as precision_text
from ..meta.preprocess import resize_text
from ..partition.placement import PartitionReport
from . import model_file


def read_metadata(path) -> dict:
    """The metadata JSON stored in a model.so (runtime/FORMAT.md), read from the file's bytes: the file is not
    loaded, so this works for a model exported for another CPU."""
    return model_file.read(path).metadata


def describe(path) -> dict:
    """`tvm-ncnn inspect model.so --json`: the metadata, plus "file" (path, size, ELF machine, sealed) and
    "labels_count"."""
    found = model_file.read(path)
    info = {"file": {"path": found.path, "size_bytes": found.size, "machine": found.machine, "sealed": found.sealed,
                     "signed_by": found.signed_by}}
    info.update(found.metadata)
    info["labels_count"] = len(found.metadata.get("labels", []))
    return info


def _tensors(specs: list[dict]) -> str:
    """'images' [1,3,H,W] float32 (H, W: multiples of 32, 32..4096): a dynamic size by its name, with its rule."""
    return "; ".join(_tensor(s) for s in specs)


def _tensor(spec: dict) -> str:
    shape = [str(d) for d in spec.get("shape", [])]
    rules = []
    for d in spec.get("dynamic", []):
        if 0 <= d["axis"] < len(shape):
            shape[d["axis"]] = d["name"]
        step = f"a multiple of {d['multiple']}, " if d.get("multiple", 1) > 1 else ""
        rules.append(f"{d['name']}: {step}{d.get('min', 1)}..{d.get('max', '?')}")
    text = f"'{spec.get('name')}' [{','.join(shape)}] {spec.get('dtype')}"
    return text + (f" (dynamic {'; '.join(rules)})" if rules else "")


def _task_text(post: dict | None) -> str:
    """The metadata's postprocess as one line: task, layout, thresholds (and strides, keypoints)."""
    if not post:
        return "none recorded (deploy_app prints the top-k of output 0)"
    if post.get("task") != "detect" and "layout" not in post:
        return post.get("task", "?")
    nms = "no NMS (an NMS-free head)" if post["layout"] == "end2end" else f"NMS iou {post['iou']:g}"
    text = (f"{post['task']} ({post['layout']}, {post.get('classes', '?')} classes; score > {post['score']:g}, "
            f"{nms}, at most {post.get('max_detections', 300)}")
    if "strides" in post:
        text += f"; strides {','.join(map(str, post['strides']))}"
    if "keypoints" in post:
        text += f"; keypoints {post['keypoints'][0]}x{post['keypoints'][1]}"
    return text + ")"


def _from(sources: dict | None, *groups: str) -> str:
    """' -- from X' for what export recorded of `groups` (metadata "sources"; absent in older files: '')."""
    if not sources:
        return ""
    found = [sources.get(g, "") for g in groups]
    if len(set(found)) == 1:
        return f" -- from {found[0]}" if found[0] else ""
    return " -- " + ", ".join(f"{g} from {w}" for g, w in zip(groups, found) if w)


def preprocess_lines(info: dict) -> list[tuple[str, str]]:
    """The preprocess, resize and task lines (inspect, and export's output), each with where it came from: the
    flags, the model's metadata, the graph, or the defaults."""
    pre = info.get("preprocess", {})
    sources = info.get("sources")
    numbers = lambda values: ",".join(f"{v:g}" for v in values)  # noqa: E731
    return [
        ("preprocess", f"{pre.get('color', 'RGB')}, mean {numbers(pre.get('mean', []))}, "
                       f"std {numbers(pre.get('std', []))} (pixel units)" + _from(sources, "scaling", "color")),
        ("resize", resize_text(pre) + _from(sources, "resize")),
        ("task", _task_text(info.get("postprocess")) + (_from(sources, "postprocess")
                                                        if info.get("postprocess") else "")),
    ]


def describe_text(info: dict) -> str:
    """describe() as the lines `tvm-ncnn inspect model.so` prints above the partition table."""
    f = info["file"]
    # Files exported before precision was recorded run fp32 unless asked at load (--precision fp16).
    precision = precision_text(info.get("precision", "fp32"))
    lines = [
        ("model.so", f"{f['path']} ({f['size_bytes'] / 1e6:.1f} MB, ELF {f['machine']}, "
                     f"{'sealed' if f['sealed'] else 'no seal'}"
                     + (f", signed by {f['signed_by']}: --trust checks it" if f.get("signed_by") else "") + ")"),
        ("target", f"{info.get('target', '?')} ({info.get('triple', '?')})"),
        ("inputs", _tensors(info.get("inputs", []))),
        ("outputs", _tensors(info.get("outputs", []))),
        *preprocess_lines(info)[:2],
        ("labels", str(info["labels_count"])),
        preprocess_lines(info)[2],
        ("precision", str(precision)),
        ("verified", _verify_text(info.get("verify"))),
        ("built by", f"tvm-ncnn {info.get('sdk_version', '?')}, TVM {info.get('tvm_version', '?')}, "
                     f"ncnn {info.get('ncnn_version', '?')}"),
    ]
    if "partition" in info:
        report = PartitionReport.from_json(info["partition"])
        lines.append(("partition", f"{report.regions} ncnn region(s), {report.ncnn_ops}/{len(report.ops)} ops, "
                                   f"{100 * report.ncnn_flops_share:.1f}% of FLOPs in ncnn"
                                   + (" (the whole model: run without the Relax VM)" if info.get("direct_region")
                                      else "")))
    else:
        lines.append(("partition", "not recorded (exported before model.so stored it)"))
    text = "\n".join(f"{key:<11}{value}" for key, value in lines)
    return text + ("\n" + _int8_text(info["int8"]) if info.get("int8") else "")


def _verify_text(record: dict | None) -> str:
    """How export checked the model before writing it (exporter/verify.py)."""
    if not record:
        return "not recorded (exported before export checked its models)"
    if record.get("result") == "passed":
        shapes = record.get("shapes")  # a model with dynamic sizes: one random input at each of two sizes
        at = f"random inputs at {' and '.join('x'.join(map(str, s[0])) for s in shapes)}" if shapes \
            else "a random input"
        return f"against {record.get('reference')} on {at}: largest error {record.get('max_error', 0):.2g} x max|ref|"
    return f"no ({record.get('why', record.get('result'))})"


def _int8_text(int8: dict) -> str:
    """Each layer ncnn could run int8 and the precision it got (int8/calibrate.py's record)."""
    layers = int8.get("layers", [])
    n = sum(1 for layer in layers if layer.get("precision") == "int8")
    head = (f"{'int8':<11}{int8.get('method', '?')} calibration on {int8.get('calibration_files', '?')} file(s) "
            f"({int8.get('held_out_files', '?')} held out): {n} of {len(layers)} layers int8, the rest fp32")
    width = max((len(layer["layer"]) for layer in layers), default=5)
    rows = [f"  {layer['layer']:<{width}}  {layer['type']:<21}{layer['precision']:<6}"
            + (f"input scale {layer['scale']:.6g}" if "scale" in layer else layer.get("why", ""))
            for layer in layers]
    return "\n".join([head, *rows])
