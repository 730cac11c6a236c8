"""The NumPy coverage table of ``docs/numpy.md``, generated from the rule registry.

``python -m ad_transform._coverage`` prints the table; ``--write`` puts it into
``docs/numpy.md`` between the ``<!-- coverage:start -->`` and
``<!-- coverage:end -->`` markers.  ``tests/test_rules_numpy.py`` fails when
the file and the registry disagree.
"""
from __future__ import annotations

import operator
import sys
from pathlib import Path

import numpy as np

from .ir import Primitive
from .rules import core

__all__ = ["numpy_coverage", "numpy_coverage_table", "write_docs", "START", "END"]

START = "<!-- coverage:start -->"
END = "<!-- coverage:end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "numpy.md"

# Other NumPy names of registered functions (the same objects), listed so the
# table reads the same whatever else a NumPy 2.x release adds to its namespace.
ALIASES = ["abs", "true_divide", "pow", "acos", "asin", "atan", "atan2", "acosh", "asinh",
           "atanh", "concat", "permute_dims"]
OPERATORS = [("x + y", operator.add), ("x - y", operator.sub), ("x * y", operator.mul),
             ("x / y", operator.truediv), ("x ** y", operator.pow), ("x @ y", operator.matmul),
             ("-x", operator.neg), ("+x", operator.pos), ("x // y", operator.floordiv),
             ("x % y", operator.mod), ("abs(x)", abs)]


def _numpy_name(fn):
    """``np.sin``, ``np.linalg.norm``, or None for callables that are not NumPy's."""
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        return None
    for prefix, module in (("np.", np), ("np.linalg.", np.linalg)):
        if getattr(module, name, None) is fn:
            return prefix + name
    return None


def _kind(prim) -> str:
    if prim.zero:
        return "zero derivative"
    if prim.differentiable:
        return "derivative rule"
    return "no derivative rule (refused on differentiated values)"


def _describe(obj) -> str:
    """The kind of a registry value: a primitive, or a lowering function."""
    return _kind(obj) if isinstance(obj, Primitive) else "lowering"


def numpy_coverage():
    """Rows ``(section, name, kind, note)`` for every NumPy callable, ndarray method and
    attribute the registry knows, sorted within each section."""
    functions = {}
    for fn in list(core.LOWERINGS):
        name = _numpy_name(fn)
        if name is not None:
            functions[name] = ("lowering", "")
    for fn, prim in list(core.REGISTRY.items()):
        name = _numpy_name(fn)
        if name is not None and name not in functions:
            functions[name] = (_kind(prim), "")
    for alias in ALIASES:
        fn = getattr(np, alias, None)
        target = None if fn is None else _numpy_name(fn)
        if target is not None and target != "np." + alias and target in functions:
            functions["np." + alias] = (functions[target][0], f"same function as `{target}`")
    rows = [("function", name, kind, note) for name, (kind, note) in sorted(functions.items())]
    for label, fn in OPERATORS:
        prim = core.lookup(fn)
        if prim is not None:
            rows.append(("operator", label, _kind(prim), ""))
    methods = {name: value for (cls, name), value in core.METHODS.items() if cls is np.ndarray}
    for name in sorted(methods):
        value = methods[name]
        kind = _describe(value)
        target = getattr(value, "name", None) if kind != "lowering" else None
        note = f"as `{target}`" if target and target.startswith("np.") else ""
        rows.append(("method", f"x.{name}()", kind, note))
    attrs = sorted(name for (cls, name) in core.ATTRS if cls is np.ndarray)
    for name in attrs:
        if name == "T":
            rows.append(("attribute", "x.T", "lowering", "as `np.transpose`"))
        else:
            rows.append(("attribute", f"x.{name}", "constant of the path", ""))
    return rows


def numpy_coverage_table() -> str:
    """The markdown table of :func:`numpy_coverage`."""
    lines = ["| NumPy | what | derivative | note |", "| --- | --- | --- | --- |"]
    for section, name, kind, note in numpy_coverage():
        lines.append(f"| `{name}` | {section} | {kind} | {note} |")
    return "\n".join(lines) + "\n"


def write_docs(path: Path = DOC) -> bool:
    """Replace the table between the markers of ``path``; True if the file changed."""
    text = path.read_text()
    head, sep, rest = text.partition(START)
    if not sep or END not in rest:
        raise SystemExit(f"{path} has no {START} ... {END} block")
    _, _, tail = rest.partition(END)
    new = f"{head}{START}\n{numpy_coverage_table()}{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        changed = write_docs()
        print(f"{DOC}: {'updated' if changed else 'already up to date'}")
    else:
        sys.stdout.write(numpy_coverage_table())
