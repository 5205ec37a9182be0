"""Reporting: the results table on the terminal and the plot (latency, ratio to native ncnn, steady RSS)."""

from __future__ import annotations

import functools

from bench_systems import SYSTEMS


def cell(row: dict, key: str, fmt: str) -> str:
    """One table cell: the row's number formatted, or '-' as wide where it has none (or NaN)."""
    v = row.get(key)
    return format(v, fmt) if isinstance(v, (int, float)) and v == v else "-".rjust(len(format(0, fmt)))


def print_table(rows: list[dict]) -> None:
    header = (f"{'model':18s} {'thr':>3s} {'system':21s} {'p50 ms':>9s} {'p90 ms':>9s} {'x native':>8s} "
              f"{'x wheel':>7s} {'x ort':>7s} {'peak MB':>8s} {'steady MB':>9s} {'load ms':>8s} {'first ms':>8s} "
              f"{'rel err':>8s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['model']:18s} {r['threads']:3d} {r['system']:21s} cannot run: {r['error'][:80]}")
            continue
        f = functools.partial(cell, r)
        print(f"{r['model']:18s} {r['threads']:3d} {r['system']:21s} {f('p50_ms', '9.2f')} {f('p90_ms', '9.2f')} "
              f"{f('ratio_to_native_ncnn', '8.3f')} {f('ratio_to_ncnn_wheel', '7.3f')} "
              f"{f('ratio_to_onnxruntime', '7.2f')} {f('rss_mb', '8.1f')} "
              f"{f('steady_rss_mb', '9.1f')} {f('load_ms', '8.1f')} {f('first_ms', '8.1f')} "
              f"{f('max_rel_err', '8.1e')}")


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    threads = sorted({r["threads"] for r in rows})
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in rows)]
    panels = [("p50_ms", "p50 latency (ms)", systems, True),
              ("ratio_to_native_ncnn", "p50 / native ncnn (C++; the wheel where C++ cannot run it)",
               [s for s in systems if not s.startswith("tvm-alone")], False),
              ("steady_rss_mb", "steady RSS (MB)", systems, True)]
    fig, axes = plt.subplots(len(panels), len(threads), figsize=(6.5 * len(threads), 12), squeeze=False)
    colors = {s: f"C{i}" for i, s in enumerate(SYSTEMS)}
    for col, t in enumerate(threads):
        for row_i, (key, title, shown, log) in enumerate(panels):
            ax = axes[row_i][col]
            width = 0.8 / len(shown)
            for i, s in enumerate(shown):
                vals = [next((r.get(key) for r in rows if r["model"] == m and r["threads"] == t and r["system"] == s),
                             None) for m in models]
                xs = [j + (i - (len(shown) - 1) / 2) * width for j in range(len(models))]
                ax.bar(xs, [v if v else 0 for v in vals], width, label=s, color=colors[s])
            if key == "ratio_to_native_ncnn":
                ax.axhline(1.0, color="k", linewidth=0.6)
                ax.axhline(1.03, color="k", linestyle="--", linewidth=0.8, label="1.03")
                ax.set_ylim(0.5, 1.5)
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels(models, rotation=20, fontsize=8)
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{title}, {t} thread{'s' if t > 1 else ''}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            if col == 0:
                ax.legend(fontsize=7, ncol=2)
    fig.suptitle("tvm-ncnn vs native ncnn, TVM alone and onnxruntime (one run, interleaved rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
