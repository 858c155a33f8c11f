"""The package never deserialises code: `.coco` files and images are data only.

A decoder that reached for pickle (directly, through `torch.load`, or numpy's
`allow_pickle`) or for `eval`/`exec` would turn a crafted file into code
execution. Bare method calls such as `model.eval()` are fine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "inrcodec"
FORBIDDEN = {
    "pickle": r"(?i)pickle",  # any mention: import pickle, cPickle, dill-style helpers, allow_pickle
    "marshal / shelve": r"\b(marshal|shelve)\b",
    "torch.load": r"\btorch\s*\.\s*load\b",
    "eval(": r"(?<![\w.])eval\s*\(",
    "exec(": r"(?<![\w.])exec\s*\(",
    "__import__": r"\b__import__\b",
}
SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_sources_found() -> None:
    assert len(SOURCES) > 10 and PACKAGE / "format" / "container.py" in SOURCES


@pytest.mark.parametrize("name", FORBIDDEN)
def test_no_code_deserialisation(name: str) -> None:
    pattern = re.compile(FORBIDDEN[name])
    hits = [f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
            for path in SOURCES for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_patterns_catch_what_they_should() -> None:
    bad = ["import pickle", "import cPickle", "torch.load(f)", "x = eval(s)", "exec(code)",
           "np.load(p, allow_pickle=True)", "from marshal import loads"]
    fine = ["model.eval()", "self.net.eval()", "evaluate(x)", "executor(x)", "torch.loaded = 1"]
    for line in bad:
        assert any(re.search(p, line) for p in FORBIDDEN.values()), line
    for line in fine:
        assert not any(re.search(p, line) for p in FORBIDDEN.values()), line
