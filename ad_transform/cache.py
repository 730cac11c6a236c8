"""(function, wrt, control path) -> compiled derivative; bounded and thread-safe.

Each differentiated function has one :class:`PathCache` per ``(wrt, mode)``.
It holds up to ``maxsize`` compiled paths in LRU order.  A compiled path
raises :class:`~ad_transform.runtime.PathMiss` at the first guard its inputs
fail, naming the guard and the outcome observed there; the inputs' path then
starts with the failing path's decisions up to that guard plus the observed
outcome, so :meth:`PathCache.resolve` tries a cached path with that prefix,
found in a trie of the paths' decisions, and lowers a new path only when none
fits.  A cached path never re-lowers.

Memory: an :class:`Entry` holds its compiled function, its guards' expected
outcomes and its file name, and nothing of the call it was lowered on.  An
evicted path (LRU bound, ``cache_clear``, a redefined function) is freed by
reference counting, and its lines leave :mod:`linecache` with it.
"""
from __future__ import annotations

import itertools
import sys
import threading
import weakref
from collections import OrderedDict, namedtuple

from .compile import source_lines
from .ir import Var, _raw, output_value
from .runtime import PathMiss, same, signatures

__all__ = ["CacheInfo", "PathCache", "Entry", "cache_for", "clear_all"]

CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])


class Entry:
    """One control path: its function, its decisions (the expected outcome of each
    guard, which the function's code also holds) and its file name.

    A decision keeps what the guard compares against: a type signature, an
    object's identity, or a snapshot of a flag or container baked into the
    path (a global list or dict, with copies of the arrays in it: the path
    read their values, so a change to them must miss).  Nothing else of the
    first call is kept.  ``nodes`` are the entry's nodes in its cache's
    decision trie, root first (``None`` once it left the cache).

    A path not compiled yet holds its ``program`` (the IR: no value of any call)
    and ``finish(program, values) -> (function, file name)``; its ``fn`` then
    interprets the program, guards included (see :meth:`PathCache._interpreter`).
    """

    __slots__ = ("fn", "decisions", "filename", "_lines", "nodes", "program", "finish",
                 "__weakref__")

    def __init__(self, fn, decisions, filename, program=None, finish=None):
        self.fn, self.decisions, self.filename = fn, decisions, filename
        self._lines = source_lines(filename) if filename else []  # linecache's list
        self.nodes = None
        self.program, self.finish = program, finish

    @property
    def source(self) -> str:
        """The generated source (the text :mod:`linecache` holds for ``filename``)."""
        return "".join(self._lines)


def _interpret(prog, args, path):
    """Run an uncompiled path's program on ``args``: ``(values, result)``.  Its guards
    raise what the compiled code's guards raise (``PathMiss(index, observed)``), with
    ``path`` (a weak reference to the entry) attached."""
    env = dict(zip(prog.inputs, args))
    for e in prog.eqns:
        vals = [env[x] if type(x) is Var else x.value for x in e.ins]
        if not e.prim.is_guard:
            env[e.out] = e.prim.impl(*vals, **dict(e.params)) if e.params else e.prim.impl(*vals)
            continue
        params = dict(e.params)
        if not e.prim.impl(*vals, **params):
            kind = e.prim.op
            observed = (not params["expect"] if kind == "truth" else
                        signatures(*vals) if kind == "types" else vals[0])
            miss = PathMiss(params["index"], observed)
            miss.path = path
            raise miss
    return env, output_value(prog, lambda x: env[x] if type(x) is Var else _raw(x))


def _key(outcome):
    """A hashable stand-in for a guard's outcome, equal for two outcomes exactly when
    :func:`~ad_transform.runtime.same` holds between them; ``None`` for outcomes that
    have none (snapshots of containers and arrays, arbitrary objects: compared with
    ``same``).  Types are told apart (``1``, ``1.0``, ``True``), and so are ``0.0`` and
    ``-0.0`` (by their ``repr``, which also makes every ``nan`` one key)."""
    t = type(outcome)
    if t is bool or t is int or t is str or t is bytes or outcome is None:
        return (t, outcome)
    if t is float:
        return (t, repr(outcome))
    if t is tuple:
        keys = tuple(_key(i) for i in outcome)
        return None if None in keys else (t, keys)
    if t is type:  # a class (type signatures): compared by identity, as same() does
        return (t, id(outcome), outcome)
    return None


class _Node:
    """A node of the decision trie: the paths below it agree on every decision up to it.
    ``keyed`` maps the hashable outcomes of the next decision to child nodes, ``other``
    lists the rest as (outcome, child); ``entry`` is the path that ends here."""

    __slots__ = ("keyed", "other", "entry")

    def __init__(self):
        self.keyed: dict = {}
        self.other: list = []
        self.entry = None

    def child(self, outcome):
        k = _key(outcome)
        if k is not None:
            return self.keyed.get(k)
        return next((n for o, n in self.other if same(o, outcome)), None)

    def add(self, outcome):
        node = _Node()
        k = _key(outcome)
        if k is not None:
            self.keyed[k] = node
        else:
            self.other.append((outcome, node))
        return node

    def drop(self, outcome, node) -> None:
        k = _key(outcome)
        if k is not None:
            if self.keyed.get(k) is node:
                del self.keyed[k]
        else:
            self.other = [(o, n) for o, n in self.other if n is not node]

    def any_entry(self, look=64):
        """A path below this node: the first compiled one met depth first (the branch
        added last first) within ``look`` nodes; else the first path met."""
        first, stack = None, [self]
        while stack:
            node = stack.pop()
            e = node.entry
            if e is not None:
                if e.program is None:
                    return e
                first = first or e
            look -= 1
            if look <= 0 and first is not None:
                break
            stack.extend(n for _, n in node.other)
            stack.extend(node.keyed.values())
        return first


_REPEATS = sys.maxsize


class PathCache:
    """The compiled paths of one function, in LRU order and in a decision trie.

    The trie is keyed by guard outcomes: the paths below a node agree on every
    decision up to it.  A path that misses at guard ``i`` with outcome ``o``
    names the node where the inputs' path leaves it (its own node at depth
    ``i``); the next path to try is any one below that node's child for ``o``,
    or none, and then a new path is built.  Each try fails strictly deeper or
    answers, so finding a path costs what the decisions of one path cost,
    whatever the number of paths cached.
    """

    # A function's first paths are compiled when they are built; once it has this many
    # cached, a new path answers its first call from the values its build computed,
    # runs interpreted if taken again, and is compiled on that second call.  (Inputs
    # that take a new path on most calls, like random signs, then never pay for
    # emitting and compiling code that would run once.)
    eager = 8
    # ... unless the paths it did not compile are taken again often: once 16 were
    # deferred, more than a quarter of them compiled on a second call means the inputs
    # come back to their paths, and new paths are compiled when built again.
    trial = 16
    # From a function's third path on, an if whose branches are simple keeps both in the
    # new path (branches.py): inputs that decide independent ifs at random then share
    # one path instead of taking a new one on almost every call.  (A function's first
    # paths decide every if: the code of one path, the shortest to read.)
    merge_from = 3

    def __init__(self, maxsize: int = 128):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.entries: OrderedDict = OrderedDict()  # Entry -> Entry, least recently used first
        self.root = _Node()
        self.by_code: dict = {}  # code object of a path's function -> its Entry
        self.slot = [_no_path]  # slot[0]: the function of the path used last, tried first
        self._current: Entry | None = None
        self.dispatcher = None  # the compiled entry point users call (see api._make)
        self.made_from = None  # the function's code and defaults the dispatcher was made from
        # next() on every hit: atomic, and cheaper than a count's (it returns None, not a
        # new int); the hits are the repetitions taken
        self.counter = itertools.repeat(None, _REPEATS)
        self._hits_cleared = 0
        self.misses = 0
        self.deferred = self.promoted = 0  # paths built without compiling; compiled later
        self.lock = threading.RLock()
        self.exhaustive = False  # try every stored path on a miss (see _resolve)
        self.on_current = None  # called with the new current entry (see dispatcher.fuse)

    @property
    def current(self) -> Entry | None:
        return self._current

    @current.setter
    def current(self, entry: Entry | None) -> None:
        self._current = entry
        self.slot[0] = _no_path if entry is None else entry.fn
        if self.on_current is not None:
            self.on_current(entry)

    def info(self) -> CacheInfo:
        return CacheInfo(self.hits, self.misses, self.maxsize, len(self.entries))

    @property
    def hits(self) -> int:
        return _REPEATS - self.counter.__length_hint__() - self._hits_cleared

    def clear(self) -> None:
        with self.lock:
            for entry in self.entries:
                entry.nodes = None
            self.entries.clear()
            self.by_code.clear()
            self.root = _Node()
            self.current = None
            self._hits_cleared += self.hits
            self.misses = 0
            self.deferred = self.promoted = 0

    # -- the trie ------------------------------------------------------------------
    def _insert(self, entry: Entry) -> None:
        node, nodes = self.root, [self.root]
        for outcome in entry.decisions:
            node = node.child(outcome) or node.add(outcome)
            nodes.append(node)
        old = node.entry
        if old is not None:  # the same path built twice (a race): keep the new one
            old.nodes = None
            self.entries.pop(old, None)
            if old.program is None:
                self.by_code.pop(old.fn.__code__, None)
        node.entry = entry
        entry.nodes = nodes
        self.entries[entry] = entry
        if entry.program is None:
            self.by_code[entry.fn.__code__] = entry
        else:
            entry.fn = self._interpreter(entry)

    def _interpreter(self, entry: Entry):
        """The function of a path not compiled yet: interprets its program; a call that
        passes every guard takes the path a second time, and compiles it.  (Holds the
        entry and the cache weakly: no reference cycle.)"""
        path, cache = weakref.ref(entry), weakref.ref(self)

        def interpreted(*args):
            e = path()
            if e is None:
                raise PathMiss(-1, None)
            if e.program is None:  # compiled meanwhile
                return e.fn(*args)
            values, result = _interpret(e.program, args, path)
            c = cache()
            if c is not None:
                c._compile(e, values)
            return result

        return interpreted

    def merge_branches(self) -> bool:
        """Lower the path being built with merged ifs (see :attr:`merge_from`)."""
        return self.misses >= self.merge_from

    def _compile_now(self) -> bool:
        return len(self.entries) < self.eager or (
            self.deferred >= self.trial and 4 * self.promoted > self.deferred)

    def _compile(self, entry: Entry, values) -> None:
        with self.lock:
            if entry.program is None:
                return
            self.promoted += 1
            before = entry.fn
            fn, filename = entry.finish(entry.program, values)
            entry.fn, entry.filename, entry._lines = fn, filename, source_lines(filename)
            entry.program = entry.finish = None
            if entry.nodes is not None:
                self.by_code[fn.__code__] = entry
            if self.slot[0] is before:
                self.slot[0] = fn

    def _remove(self, entry: Entry) -> None:
        nodes, entry.nodes = entry.nodes, None
        self.entries.pop(entry, None)
        if entry.program is None and self.by_code.get(entry.fn.__code__) is entry:
            del self.by_code[entry.fn.__code__]
        if nodes is None or nodes[-1].entry is not entry:
            return
        nodes[-1].entry = None
        for i in range(len(nodes) - 1, 0, -1):  # prune the branch back to a shared node
            node = nodes[i]
            if node.entry is not None or node.keyed or node.other:
                break
            nodes[i - 1].drop(entry.decisions[i - 1], node)

    def _next_candidate(self, entry: Entry, miss):
        """A cached path that agrees with the inputs' path up to and including the
        decision where ``entry`` missed (``None``: no cached path does)."""
        i = miss.index
        nodes = entry.nodes
        if nodes is not None and i < len(nodes):
            node = nodes[i]
        else:  # the path that missed left the cache meanwhile: walk its decisions
            node = self.root
            for outcome in entry.decisions[:i]:
                node = node.child(outcome)
                if node is None:
                    return None
        child = node.child(miss.observed)
        return None if child is None else child.any_entry()

    # -- resolving a miss ------------------------------------------------------------
    def resolve(self, args, miss, build):
        """Answer a call whose current path missed (or that found no path yet).

        ``miss`` is the :class:`PathMiss` the current path raised; the path it
        came from is found from its traceback (:meth:`_raised_by`), not from
        ``self.current``, which another thread may have changed meanwhile; so a
        cached path is not lowered again under contention.
        ``build(args, compile_now) -> (Entry, result)`` lowers (and compiles) a new path.
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
                candidate = self._next_candidate(entry, miss)
                if candidate is None:
                    break
                try:
                    result = candidate.fn(*args)
                except PathMiss as again:
                    again = again.with_traceback(None)
                    # a later decision failing is progress; an earlier one can fail only
                    # where a rolled loop checks its body's guards again, after later ones
                    if again.index <= miss.index:
                        break
                    entry, miss = candidate, again
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
            entry, result = build(args, self._compile_now())
            if entry.program is not None:
                self.deferred += 1
            self._insert(entry)
            while len(self.entries) > self.maxsize:
                self._remove(next(iter(self.entries)))
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
        path = getattr(miss, "path", None)  # raised by an interpreted path
        if path is not None:
            return path()
        tb = miss.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        code = tb.tb_frame.f_code if tb is not None else None
        with self.lock:
            return self.by_code.get(code)

    def entry_for(self, args, build) -> Entry:
        """The compiled path these inputs take (compiling it if needed)."""
        try:
            self.slot[0](*args)
        except PathMiss as miss:
            self.resolve(args, miss, build)
        entry = self.current
        if entry.program is not None:  # not compiled yet: this call compiles it
            entry.fn(*args)
        return entry


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


def clear_all() -> None:
    """Drop every compiled path of every function (a derivative rule they call changed)."""
    with _LOCK:
        caches = [c for per_fn in list(_CACHES.values()) for c in per_fn.values()]
    for cache in caches:
        cache.clear()
