"""(function, wrt, control path) -> compiled derivative; bounded and thread-safe.

Each differentiated function has one :class:`PathCache` per ``(wrt, mode)``.
It holds up to ``maxsize`` compiled paths in LRU order.  A compiled path
raises :class:`~ad_transform.runtime.PathMiss` at the first guard its inputs
fail, naming the guard and the outcome observed there; the inputs' path then
starts with the failing path's decisions up to that guard plus the observed
outcome, so :meth:`PathCache.resolve` tries the cached paths with that prefix
and lowers a new path only when none fits.  A cached path never re-lowers.

Memory: an :class:`Entry` holds its compiled function, its guards' expected
outcomes and its file name, and nothing of the call it was lowered on.  An
evicted path (LRU bound, ``cache_clear``, a redefined function) is freed by
reference counting, and its lines leave :mod:`linecache` with it.
"""
from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict, namedtuple

from .compile import source_lines
from .runtime import PathMiss, same

__all__ = ["CacheInfo", "PathCache", "Entry", "cache_for"]

CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])


class Entry:
    """One compiled control path: its function, its decisions (the expected outcome
    of each guard, which the function's code also holds) and its file name.

    A decision keeps what the guard compares against: a type signature, an
    object's identity, or a snapshot of a flag or container baked into the
    path (a global list or dict, with copies of the arrays in it: the path
    read their values, so a change to them must miss).  Nothing else of the
    first call is kept.
    """

    __slots__ = ("fn", "decisions", "filename", "_lines")

    def __init__(self, fn, decisions, filename):
        self.fn, self.decisions, self.filename = fn, decisions, filename
        self._lines = source_lines(filename)  # the list linecache holds, not a copy

    @property
    def source(self) -> str:
        """The generated source (the text :mod:`linecache` holds for ``filename``)."""
        return "".join(self._lines)


class PathCache:
    def __init__(self, maxsize: int = 128):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.entries: OrderedDict = OrderedDict()  # Entry -> Entry, least recently used first
        self.slot = [_no_path]  # slot[0]: the function of the path used last, tried first
        self._current: Entry | None = None
        self.dispatcher = None  # the compiled entry point users call (see api._make)
        self.counter = itertools.count()  # next() on every hit: atomic and cheap
        self._hits_cleared = 0
        self.misses = 0
        self.lock = threading.RLock()
        self.exhaustive = False  # try every stored path on a miss (see _resolve)

    @property
    def current(self) -> Entry | None:
        return self._current

    @current.setter
    def current(self, entry: Entry | None) -> None:
        self._current = entry
        self.slot[0] = _no_path if entry is None else entry.fn

    def info(self) -> CacheInfo:
        return CacheInfo(self.hits, self.misses, self.maxsize, len(self.entries))

    @property
    def hits(self) -> int:
        return int(repr(self.counter)[len("count("):-1]) - self._hits_cleared

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.current = None
            self._hits_cleared += self.hits
            self.misses = 0

    def resolve(self, args, miss, build):
        """Answer a call whose current path missed (or that found no path yet).

        ``miss`` is the :class:`PathMiss` the current path raised; the path it
        came from is found from its traceback (:meth:`_raised_by`), not from
        ``self.current``, which another thread may have changed meanwhile; so a
        cached path is not lowered again under contention.
        ``build(args) -> (Entry, result)`` lowers and compiles a new path.
        """
        try:
            return self._resolve(args, miss, build)
        finally:
            # The traceback holds the frames of the missed paths (their inputs and
            # values) and the caller's frame, which holds ``miss``: a cycle that
            # would keep them alive until the garbage collector runs.
            miss.__traceback__ = None

    def _resolve(self, args, miss, build):
        entry = None if miss.index < 0 else self._raised_by(miss)
        miss.__traceback__ = None
        with self.lock:
            if entry is None and self.current is not None:  # another thread compiled meanwhile
                entry = self.current
                try:
                    result = entry.fn(*args)
                except PathMiss as again:
                    miss = again.with_traceback(None)
                else:
                    next(self.counter)
                    return result
            while entry is not None and miss is not None:
                prefix = entry.decisions[:miss.index] + (miss.observed,)
                n = len(prefix)
                candidate = next((e for e in reversed(self.entries.values())
                                  if same(e.decisions[:n], prefix)), None)
                if candidate is None:
                    break
                try:
                    result = candidate.fn(*args)
                except PathMiss as again:
                    entry, miss = candidate, again.with_traceback(None)
                    continue
                return self._hit(candidate, result)
            if self.exhaustive:
                # a derivative of a derivative: which inner path a guard belongs to depends
                # on the inputs, so a prefix does not name the path; every stored path runs
                # its own guards, the most recent first
                for candidate in reversed(list(self.entries.values())):
                    try:
                        result = candidate.fn(*args)
                    except PathMiss:
                        continue
                    return self._hit(candidate, result)
            self.misses += 1
            entry, result = build(args)
            for old in [e for e in self.entries if same(e.decisions, entry.decisions)]:
                del self.entries[old]  # the same path built twice (a race): keep the new one
            self.entries[entry] = entry
            while len(self.entries) > self.maxsize:
                self.entries.popitem(last=False)
            self.current = entry
            return result

    def _hit(self, candidate, result):
        next(self.counter)
        self.entries.move_to_end(candidate)
        self.current = candidate
        return result

    def _raised_by(self, miss) -> Entry | None:
        """The cached path whose guard raised ``miss``: the innermost frame of its
        traceback (``self.current`` may already be another thread's path)."""
        tb = miss.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        code = tb.tb_frame.f_code if tb is not None else None
        with self.lock:
            return next((e for e in self.entries.values() if e.fn.__code__ is code), None)

    def entry_for(self, args, build) -> Entry:
        """The compiled path these inputs take (compiling it if needed)."""
        try:
            self.slot[0](*args)
            return self.current
        except PathMiss as miss:
            self.resolve(args, miss, build)
        return self.current


def _no_path(*args):
    raise PathMiss(-1, None)


_CACHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def cache_for(fn, key, maxsize: int) -> PathCache:
    """The cache of ``fn`` for ``key`` (wrt and mode); shared by all its wrappers."""
    with _LOCK:
        per_fn = _CACHES.setdefault(fn, {})
        cache = per_fn.get(key)
        if cache is None or cache.maxsize != maxsize:
            cache = per_fn[key] = PathCache(maxsize)
        return cache
