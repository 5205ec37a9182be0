"""The README's C++ example is the Conan test package's source, word for word."""

from __future__ import annotations

import re

from conftest import ROOT


def readme_block(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^`" + re.escape(title) + r"`\n```[a-z]*\n(.*?)^```$", text, re.S | re.M)
    assert match, f"README has no code block under `{title}`"
    return match.group(1)


def test_conan_snippets_are_the_test_package():
    package = ROOT / "tests" / "conan" / "test_package"
    for name in ("CMakeLists.txt", "main.cpp"):
        assert readme_block(name) == (package / name).read_text(), name
