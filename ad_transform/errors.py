"""Located error types.

Every error that points at user code carries a :class:`Loc` and prints as
``file:line:col: message`` followed by the offending source line and a caret,
the way compilers and beniget report problems.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Loc",
    "LoopRun",
    "ADError",
    "UnsupportedSyntax",
    "MissingRule",
    "SourceUnavailable",
    "NonScalarOutput",
    "BadWrt",
    "PathTooLong",
    "BadRule",
]


@dataclass(frozen=True)
class Loc:
    """A position in the user's source: file, 1-based line, 0-based column."""

    file: str
    line: int
    col: int
    text: str = ""  # the whole source line, without its newline
    # the unrolled loop iterations this position is in, outermost first: (run, index) pairs
    trip: tuple = ()

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def place(self) -> str:
        """``loopy.py:7``, with the loop iteration it is in: ``loopy.py:7 (iteration 2 of 3)``."""
        where = f"{self.file.rsplit('/', 1)[-1]}:{self.line}"
        if not self.trip:
            return where
        parts = [f"iteration {i} of {run.count}" if i <= run.count else
                 f"exit test after {run.count} iteration{'s' * (run.count != 1)}"
                 for run, i in reversed(self.trip)]
        return f"{where} ({' in '.join(parts)})"

    def in_trip(self, trip: tuple) -> "Loc":
        """This position inside the loop iterations ``trip`` (the text is shared)."""
        return Loc(self.file, self.line, self.col, self.text, trip)

    def excerpt(self) -> str:
        if not self.text:
            return ""
        stripped = self.text.lstrip()
        caret = " " * max(self.col - (len(self.text) - len(stripped)), 0)
        return f"\n    {stripped}\n    {caret}^"


class LoopRun:
    """One run of a loop being unrolled; ``count`` is its number of iterations so far,
    the total once it has ended (a while loop's last test comes after them)."""

    __slots__ = ("count",)

    def __init__(self):
        self.count = 0


class ADError(Exception):
    """Base class of every error ad_transform raises about user code."""

    def __init__(self, message: str, loc: Loc | None = None):
        self.message = message
        self.loc = loc
        super().__init__(self._format())

    def _format(self) -> str:
        if self.loc is None:
            return self.message
        return f"{self.loc}: {self.message}{self.loc.excerpt()}"


class UnsupportedSyntax(ADError):
    """A construct ad_transform cannot differentiate (``try``, ``with``, ...)."""


class MissingRule(ADError):
    """A call to a function with neither a derivative rule nor readable source."""


class SourceUnavailable(ADError):
    """The function's source cannot be read (built-in, ``exec``, plain REPL)."""


class NonScalarOutput(ADError, TypeError):
    """``gradient`` needs a function that returns one real number."""


class BadWrt(ADError, ValueError):
    """``wrt`` names no parameter, or the argument it names is not real."""


class PathTooLong(ADError):
    """The unrolled control path exceeded the equation budget (a runaway loop?)."""


class BadRule(ADError):
    """A user's derivative rule (``custom_vjp``/``defvjp``) raised or returned a value
    that is not a real number or array shaped like its argument."""
