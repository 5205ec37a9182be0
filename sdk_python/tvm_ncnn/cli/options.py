"""The tvm-ncnn command's argument types (cli/main.py): each turns one option's text into its value, or refuses it in
one line as argparse's own errors do; --version is an action that prints and exits."""

from __future__ import annotations

import argparse

from ..errors import ModelError


class Version(argparse.Action):
    """--version: the SDK, the TVM it compiles with and the ncnn of its runtime library, asked only when wanted
    (the runtime library is loaded for it)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        from .. import __version__
        from ..runtime import native

        try:
            tvm = version("apache-tvm")
        except PackageNotFoundError:
            tvm = "not installed"
        try:
            ncnn = native.versions()["ncnn"]
        except ModelError:
            ncnn = "unknown (the runtime library is not built)"
        print(f"tvm-ncnn {__version__}, TVM {tvm}, ncnn {ncnn}")
        parser.exit()


def floats3(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not three comma-separated numbers") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"'{text}' has {len(values)} values, expected 3 (R,G,B)")
    return values


def input_shape(text: str) -> tuple[str, list]:
    """NAME:1,3,224,224 pins the sizes; a name leaves one dynamic (NAME:1,3,H,W), optionally bounded
    (NAME:1,3,H=32..1280,W): frontend/dynamic.py."""
    from ..frontend.dynamic import parse_dim

    name, sep, dims = text.rpartition(":")
    try:
        shape = [parse_dim(d) for d in dims.split(",")]
    except ModelError:
        shape = []
    if not sep or not name or not shape or any(isinstance(d, int) and d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME:D1,D2,... (e.g. input:1,3,224,224, or "
                                         f"input:1,3,H,W for dynamic sizes)")
    return name, [d if isinstance(d, int) else dims.split(",")[i] for i, d in enumerate(shape)]


def threads(text: str) -> int:
    from ..runtime import native

    most = native.limits()["max_threads"]
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number from 1 to {most} (leave --threads out "
                                         f"for the big cores of this machine)")
    return value


def runs(text: str) -> int:
    from ..runtime.model import MAX_PROFILE_RUNS

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PROFILE_RUNS:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number from 1 to {MAX_PROFILE_RUNS}")
    return value
