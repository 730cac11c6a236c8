"""Every ``python`` block in docs/api.md runs, and prints what the ``text`` block after it shows.

Each block is written to its own file (ad_transform reads function sources
from files) and run as ``__main__``.  Where a ``text`` block follows, the
output must match it, file names aside (the docs show the names of the files
the examples were saved as, and the serial numbers of generated files); a ``text`` block ending in ``SomeError: ...``
means the block must raise that error, after printing the lines above it.  A
block marked ``<!-- norun: why -->`` (a summary of call forms) is not run.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import runpy

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "api.md")
_BLOCK = re.compile(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```)?", re.S)
_FILE = re.compile(r"(?:[\w./-]*/)?[\w.-]+\.py\b")


def _blocks():
    """The blocks to run: all but those marked ``<!-- norun: why -->`` (call-form summaries)."""
    text = open(DOC, encoding="utf-8").read()
    return [(text[:m.start()].count("\n") + 1, m.group(1), m.group(2))
            for m in _BLOCK.finditer(text)
            if not text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1].startswith("<!-- norun")]


_SERIAL = re.compile(r" #\d+>")  # generated files are numbered in the order they are made


def _normal(text: str) -> str:
    return _SERIAL.sub(" #N>", _FILE.sub("<file>", text)).rstrip()


@pytest.mark.parametrize("line, code, want", _blocks(), ids=[f"line{b[0]}" for b in _blocks()])
def test_api_md_example(line, code, want, tmp_path, monkeypatch):
    path = tmp_path / f"api_md_{line}.py"
    path.write_text(code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    error = None
    if want is not None:
        last = want.rstrip().splitlines()[-1] if want.strip() else ""
        start = next((i for i, ln in enumerate(want.splitlines())
                      if re.match(r"^[A-Z]\w*(Error|Exception|Warning)\b: ", ln)), None)
        if start is not None and last:
            error = want.splitlines()[start].split(":", 1)[0]
            want = "\n".join(want.splitlines()[:start])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if error is None:
            runpy.run_path(str(path), run_name="__main__")
        else:
            with pytest.raises(Exception) as info:
                runpy.run_path(str(path), run_name="__main__")
            assert type(info.value).__name__ == error
    if want is not None:
        assert _normal(out.getvalue()) == _normal(want)
