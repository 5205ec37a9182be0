"""int8 activation scales from calibration data, by ncnn's methods (tools/quantize/ncnn2table.cpp, which the ncnn
sdist does not ship): written here in numpy, fed by the fp32 model.so itself.

The fp32 model.so runs each calibration input through the runtime with the probe on (runtime/src/ncnn/probe.cc):
every region also hands over the input blob of each layer to quantize. Per blob:
  * absmax over all inputs (pass 1), then a 2048-bin histogram of |x| over [0, absmax], zeros left out (pass 2);
  * kl (default): the clip threshold whose 128-level quantized histogram is closest to the clipped one in KL
    divergence (ncnn's exact bin arithmetic: fractional bin edges, eps 1e-4, averaged over the bin's width);
  * aciq: the Gaussian clip of ACIQ for 8 bits from absmax and the element count (no histogram: one pass);
  * eq: kl's scale, then ncnn's equalization search: the input scale in [0.5, 2] x kl's that gives the layer's
    output the best mean cosine similarity to fp32, each candidate run through ncnn's own int8 layer
    (tvm_ncnn.ncnn_net_run on a one-layer graph; 20 steps over at most 8 inputs, not ncnn2table's 100 over 50:
    it runs at export; the per-channel weight-scale search ncnn2table adds is not done).
A blob a clipping activation bounds (ReLU6: a layer's fused clip, param 9 = 3, seen through pooling and the
like; ncnn.quantize.bounded_blobs) takes threshold = absmax instead, for every method: its values pile up at the
bound (6), and KL's clip below it (EfficientNet-Lite0: 3.5-4.9 on four such blobs) turns every saturated value
into a smaller one -- measured, the worst single error source after the first depthwise conv (issue 14).
scale = 127 / threshold. Everything is float64 numpy in a fixed order over sorted files: the same files give
the same scales, bit for bit, and so the same model.so."""

from __future__ import annotations


import numpy as np

from ..ncnn.quantize import MAX_SCALE, aciq_threshold

BINS = 2048
TARGET_BINS = 128
KL_EPS = 1e-4
METHODS = ("kl", "aciq", "eq")


def _integral(cum: np.ndarray, density: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Integral over [0, x) of a step function with unit-width steps `density` (cum: its running sum, 0 first)."""
    whole = np.minimum(np.floor(x).astype(np.int64), len(density) - 1)
    return cum[whole] + (x - whole) * density[whole]


def kl_divergence(normed: np.ndarray, cum: np.ndarray, threshold: int) -> float:
    """KL(clipped || quantized-and-expanded) of the normalized histogram at one threshold bin (cum: its running
    sum, 0 first)."""
    clip = normed[:threshold] + KL_EPS
    clip[-1] += normed[threshold:].sum()
    per_bin = threshold / TARGET_BINS
    edges = np.arange(TARGET_BINS + 1) * per_bin
    edges[-1] = threshold
    # each of the 128 levels: the histogram mass in its range over the range's width
    level = np.diff(_integral(cum, normed, edges)) / np.diff(edges)
    # expanded back: each unit bin gets the integral of the level function over it
    level_cum = np.concatenate([[0.0], np.cumsum(level * per_bin)])
    position = np.arange(threshold + 1, dtype=np.float64) / per_bin
    whole = np.minimum(np.floor(position).astype(np.int64), TARGET_BINS - 1)
    expand = np.diff(level_cum[whole] + (position - whole) * per_bin * level[whole]) + KL_EPS
    return float(np.sum(clip * np.log(clip / expand)))


def kl_threshold_bin(histogram: np.ndarray) -> int:
    """The threshold bin (128..2047) of least KL divergence, as ncnn2table's quantize_KL computes it (the first
    of equal ones)."""
    normed = histogram / max(histogram.sum(), 1)
    cum = np.concatenate([[0.0], np.cumsum(normed)])
    divergences = [kl_divergence(normed, cum, t) for t in range(TARGET_BINS, BINS)]
    return TARGET_BINS + int(np.argmin(divergences))


class BlobStats:
    """What calibration keeps of one probed blob across the inputs."""

    def __init__(self):
        self.absmax = 0.0
        self.count = 0
        self.histogram = np.zeros(BINS, dtype=np.int64)

    def see_absmax(self, x: np.ndarray) -> None:
        self.absmax = max(self.absmax, float(np.abs(x).max(initial=0.0)))
        self.count = x.size

    def see_histogram(self, x: np.ndarray) -> None:
        if self.absmax == 0:
            return
        a = np.abs(x[x != 0]).astype(np.float64)
        index = np.minimum((a / self.absmax * BINS).astype(np.int64), BINS - 1)
        self.histogram += np.bincount(index, minlength=BINS)

    def scale(self, method: str, bounded: bool = False) -> float:
        if self.absmax == 0:
            return 1.0  # never nonzero on the calibration data: any scale quantizes it exactly
        if bounded:
            threshold = self.absmax
        elif method == "aciq":
            threshold = aciq_threshold(self.absmax, self.count)
        else:
            threshold = (kl_threshold_bin(self.histogram) + 0.5) * self.absmax / BINS
        return float(np.float32(min(127.0 / threshold, MAX_SCALE)))


def collect(run, probe_keys: list[str], inputs, method: str, bounded: frozenset = frozenset()) -> dict[str, float]:
    """Scales for the probed blobs. run(x) runs the fp32 model on one input and returns {key: array} of the
    probed blobs (int8/calibrate.py wires it to the probe); inputs is a list of model inputs; bounded: the keys a
    clipping activation bounds (scale from absmax)."""
    stats = {k: BlobStats() for k in probe_keys}
    histogram = method != "aciq" and any(k not in bounded for k in probe_keys)
    passes = ("absmax", "histogram") if histogram else ("absmax",)
    for step in passes:
        for x in inputs:
            blobs = run(x)
            for k in probe_keys:
                if k not in blobs:
                    raise RuntimeError(f"calibration: blob {k} was not probed")
                getattr(stats[k], f"see_{step}")(blobs[k])
    return {k: stats[k].scale(method, k in bounded) for k in probe_keys}
