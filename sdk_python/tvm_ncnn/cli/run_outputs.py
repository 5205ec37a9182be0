"""What `tvm-ncnn run` does with a model's outputs besides printing them: save every one (.npz) or the one (.npy),
and tell class scores from the rest, as deploy_app does (deploy_app/outputs.cc), so that a detector exported
without --task is not shown as a softmax top-5 over its [1,84,8400]."""

from __future__ import annotations

import zipfile

import numpy as np

from ..meta.postprocess import DETECTOR_TASKS


def shape_text(y) -> str:
    return "[" + ",".join(str(d) for d in y.shape) + "]"  # as deploy_app prints shapes


def check_output_file(path: str | None, names: list[str]) -> str | None:
    """The one-line complaint for a .npy asked of a model with several outputs (before the run), else None."""
    if not path or len(names) <= 1 or is_npz(path):
        return None
    quoted = ", ".join(f"'{n}'" for n in names)
    return (f"--output '{path}': the model has {len(names)} outputs ({quoted}) and a .npy holds one; give a .npz "
            "name (numpy.load reads it)")


def is_npz(path: str) -> bool:
    return path.lower().endswith(".npz")


def save(path: str, names: list[str], outputs: list) -> None:
    if not is_npz(path):
        np.save(path, outputs[0])
        return
    # numpy.savez's file (an uncompressed zip of NAME.npy) entry by entry with numpy's own .npy writer: savez takes
    # the names as keywords, and an output may well be called 'file'.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, y in zip(names, outputs):
            with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(y), allow_pickle=False)


def task_of(info: dict) -> str:
    return (info.get("postprocess") or {}).get("task") or ""


def class_scores(task: str, first) -> bool:
    """A top-k means something for a classifier, or a vector: at most one dimension other than 1."""
    return task == "classify" or (task not in DETECTOR_TASKS and sum(d != 1 for d in first.shape) <= 1)


def not_class_scores_line(task: str, names: list[str], outputs: list) -> str:
    y = outputs[0]
    what = f"model.so records task '{task}' (deploy_app and model.detect(image) decode it)" if task else \
        f"model.so records no task; export with --task {'|'.join(DETECTOR_TASKS)} to get boxes"
    return (f"scores   none: output '{names[0]}' {shape_text(y)} {y.dtype} is not class scores and {what}, or save "
            f"the raw outputs with --output {'out.npz' if len(outputs) > 1 else 'out.npy'}")
