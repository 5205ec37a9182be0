"""Reporting: the results table on the terminal and the plot (latency, ratio to native ncnn, steady RSS)."""

from __future__ import annotations

from bench_systems import SYSTEMS


def cell(row: dict, key: str, fmt: str) -> str:
    """One table cell: the row's number formatted, or '-' as wide where it has none (or NaN)."""
    v = row.get(key)
    return format(v, fmt) if isinstance(v, (int, float)) and v == v else "-".rjust(len(format(0, fmt)))


def print_rows(rows: list[dict], system_width: int, columns: list[tuple[str, str, str]]) -> None:
    """A table of model, threads, system, then (title, key, format) columns; a row that could not run says why."""
    header = f"{'model':18s} {'thr':>3s} {'system':{system_width}s} " + " ".join(
        f"{title:>{len(format(0, fmt))}s}" for title, _, fmt in columns)
    print(header)
    print("-" * len(header))
    for r in rows:
        lead = f"{r['model']:18s} {r['threads']:3d} {r['system']:{system_width}s}"
        if "error" in r:
            print(f"{lead} cannot run: {r['error'][:80]}")
        else:
            print(lead + " " + " ".join(cell(r, key, fmt) for _, key, fmt in columns))


def print_table(rows: list[dict]) -> None:
    print_rows(rows, 21, [("p50 ms", "p50_ms", "9.2f"), ("p90 ms", "p90_ms", "9.2f"),
                          ("x native", "ratio_to_native_ncnn", "8.3f"), ("x wheel", "ratio_to_ncnn_wheel", "7.3f"),
                          ("x ort", "ratio_to_onnxruntime", "7.2f"), ("peak MB", "rss_mb", "8.1f"),
                          ("steady MB", "steady_rss_mb", "9.1f"), ("load ms", "load_ms", "8.1f"),
                          ("first ms", "first_ms", "8.1f"), ("rel err", "max_rel_err", "8.1e")])


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
