"""The Python examples in docs/*.md run, and print what the docs say they print.

Which blocks run:

* in the files of ``RUN_ALL`` (docs/api.md, docs/extending.md) every ```python block,
  except one preceded by ``<!-- norun: why -->``;
* in the other docs and README.md, the blocks preceded by ``<!-- run -->``.

A block preceded by ``<!-- run: output -->`` must also print exactly the ```text block
that follows it (an uncaught exception at the end prints as ``Type: message``).  Each
block runs on its own, in a fresh interpreter, as a file in a fresh directory
(``<!-- run: file=name.py -->`` names it; shown as ``/tmp/demo`` in the output), so
``inspect`` can read its source and a rule it registers stays in that interpreter.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUN_ALL = ("api.md", "extending.md")
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_MARK = re.compile(r"<!--\s*(run|norun)\b([^>]*)-->\s*$")


def blocks(path: Path):
    """``(name, code, options, expected output or None)`` for each block that runs."""
    text = path.read_text(encoding="utf-8")
    fences = list(_FENCE.finditer(text))
    out = []
    for i, m in enumerate(fences):
        if m.group(1) != "python":
            continue
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        kind, opts = (mark.group(1), mark.group(2)) if mark else (None, "")
        if kind == "norun" or (kind is None and path.name not in RUN_ALL):
            continue
        options = dict(re.findall(r"(\w+)=(\S+)", opts))
        wants_output = re.search(r"\boutput\b", opts) is not None
        expected = None
        if wants_output:
            nxt = fences[i + 1] if i + 1 < len(fences) else None
            assert nxt is not None and nxt.group(1) == "text", \
                f"{path.name}:{text.count(chr(10), 0, m.start()) + 1}: 'run: output' needs " \
                "a ```text block after the code"
            expected = nxt.group(2)
        line = text.count("\n", 0, m.start()) + 1
        out.append((f"{path.name}:{line}", m.group(2), options, expected))
    return out


CASES = [case for doc in [*sorted(DOCS.glob("*.md")), ROOT / "README.md"] for case in blocks(doc)]


def test_the_runner_finds_the_examples():
    names = {c[0].split(":")[0] for c in CASES}
    assert {"api.md", "extending.md"} <= names


# Runs one example in a fresh interpreter (rules an example registers stay there) and
# prints an uncaught exception at the end as ``Type: message`` on stdout.
_BOOT = """
import runpy, sys, traceback
try:
    runpy.run_path(sys.argv[1], run_name="__main__")
except Exception as exc:
    t = type(exc)
    name = t.__qualname__ if t.__module__ in ("builtins", "__main__") else f"{t.__module__}.{t.__qualname__}"
    sys.stdout.write(f"{name}: {exc}\\n")
    sys.stderr.write("".join(traceback.format_exception(exc)))
    sys.exit(1)
"""


@pytest.mark.parametrize("name, code, options, expected", CASES, ids=[c[0] for c in CASES])
def test_doc_example(name, code, options, expected, tmp_path):
    stem = name.replace(".md:", "_").replace(".", "_")
    file = tmp_path / options.get("file", f"doc_{stem}.py")
    file.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.pop("AD_TRANSFORM_DUMP", None)
    run = subprocess.run([sys.executable, "-c", _BOOT, str(file)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    if expected is None:
        assert run.returncode == 0, f"{name}: the example raised\n{run.stderr}"
        return
    printed = _norm(run.stdout.replace(str(tmp_path), "/tmp/demo"))
    assert printed == _norm(expected), \
        f"{name}: the example prints\n{printed}\nthe docs say\n{expected}\n{run.stderr}"


def _norm(text: str) -> str:
    """Trailing spaces and blank lines at the end do not count."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def test_markers_choose_the_blocks(tmp_path):
    doc = tmp_path / "other.md"
    doc.write_text("\n".join([
        "```python", "print('not marked: skipped outside RUN_ALL')", "```",
        "<!-- run -->", "```python", "x = 1", "```",
        "<!-- run: output file=named.py -->", "```python", "print(2)", "```",
        "```text", "2", "```",
        "<!-- norun: a fragment -->", "```python", "@decorator", "```", ""]),
        encoding="utf-8")
    found = blocks(doc)
    assert [(code, opts, out) for _, code, opts, out in found] == [
        ("x = 1\n", {}, None), ("print(2)\n", {"file": "named.py"}, "2\n")]
    all_run = tmp_path / "api.md"  # in RUN_ALL: unmarked blocks run, norun ones do not
    all_run.write_text(doc.read_text(encoding="utf-8"), encoding="utf-8")
    assert len(blocks(all_run)) == 3


def test_a_wrong_output_fails(tmp_path):
    with pytest.raises(AssertionError, match="the docs say"):
        test_doc_example("x.md:1", "print(1)\n", {}, "2\n", tmp_path)
