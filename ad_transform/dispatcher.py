"""The wrapper users call: a generated function with the user's own signature.

Guarantees of :func:`emit_dispatcher`: the wrapper takes exactly the parameters of
the user's function (defaults included, no ``*args`` packing), calls the current
path's derivative, counts a hit, and hands a :class:`~ad_transform.runtime.PathMiss`
to the cache outside the ``except`` clause (so an error lowering the new path is not
reported as raised while handling the miss).  It builds its own small AST; the
derivative's AST is :mod:`ad_transform.emit`'s.

A fused wrapper (``fused=``, see :func:`fusible`) runs one path's statements in its
own frame instead of calling the current path: the same statements, guards
included (only the final ``return`` becomes the result), so on inputs that path
was not built for it misses exactly as the path's function does, and the miss
goes to the cache.  It is the wrapper's code while that path is the current one
(``transforms._fuse`` swaps the code objects): one Python call less on the path
most functions only ever take.
"""
from __future__ import annotations

import functools
import inspect
import weakref

import gast

from . import runtime
from .compile import compile_function
from .emit import Emitted, _const, _load, _store
from .ir import Namer

__all__ = ["emit_dispatcher", "fusible", "fuse", "swap", "swapped"]


def emit_dispatcher(name: str, params, slot_obj, cache_obj, build_obj, fused=None,
                    reserved=()) -> Emitted:
    """The wrapper users call: same signature as their function, no ``*args`` packing.

    ``params`` are the function's :class:`inspect.Parameter` s.  The body calls
    the current path's derivative ``slot[0](...)`` with one value per
    parameter; a :class:`PathMiss` goes to ``cache.resolve``; a hit is counted.
    With ``fused=(path_fdef, entry_ref)`` (``path_fdef`` from :func:`fusible`), the
    path's own statements run instead of that call; a miss they raise names their
    entry (``miss.path = entry_ref``, as an interpreted path's does).  The wrapper's
    namespace then also needs the path's globals.
    """
    taken = [p.name for p in params] + [name] + list(reserved)
    if fused is not None:
        taken += sorted(_names(fused[0]))
    namer = Namer(reserved=taken)
    namespace: dict = {}

    def bind(hint, obj=None):
        n = namer.fresh(hint, global_name=True)
        namespace[n] = obj
        return n

    slot, cache, build = bind("slot", slot_obj), bind("cache", cache_obj), bind("build", build_obj)
    miss_t = bind("PathMiss", runtime.PathMiss)
    result, miss = namer.fresh("result"), namer.fresh("miss")
    P = inspect.Parameter

    def param(p):
        return gast.Name(id=p.name, ctx=gast.Param(), annotation=None, type_comment=None)

    def default(p):
        return None if p.default is P.empty else _load(bind("default", p.default))

    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    kwonly = [p for p in params if p.kind is P.KEYWORD_ONLY]
    var = next((p for p in params if p.kind is P.VAR_POSITIONAL), None)
    kw = next((p for p in params if p.kind is P.VAR_KEYWORD), None)
    args = gast.arguments(
        posonlyargs=[param(p) for p in positional if p.kind is P.POSITIONAL_ONLY],
        args=[param(p) for p in positional if p.kind is P.POSITIONAL_OR_KEYWORD],
        vararg=param(var) if var else None, kwonlyargs=[param(p) for p in kwonly],
        kw_defaults=[default(p) for p in kwonly], kwarg=param(kw) if kw else None,
        defaults=[d for d in (default(p) for p in positional) if d is not None])
    values = [_load(p.name) for p in params]
    call = gast.Call(func=gast.Subscript(value=_load(slot), slice=_const(0), ctx=gast.Load()),
                     args=values, keywords=[])
    caught = namer.fresh("missed")
    resolve = gast.Return(value=gast.Call(
        func=gast.Attribute(value=_load(cache), attr="resolve", ctx=gast.Load()),
        args=[gast.Tuple(elts=[_load(p.name) for p in params], ctx=gast.Load()),
              _load(caught), _load(build)], keywords=[]))
    counter = bind("hits", cache_obj.counter)
    count = gast.Expr(value=gast.Call(func=_load(bind("next", next)), args=[_load(counter)],
                                      keywords=[]))

    def attempt(stmts, handler=()):
        """try: <stmts> except PathMiss: <remember it> else: count the hit, return."""
        return gast.Try(
            body=stmts,
            handlers=[gast.ExceptHandler(type=_load(miss_t), name=_store(miss),
                                         body=[gast.Assign(targets=[_store(caught)],
                                                           value=_load(miss),
                                                           type_comment=None)] + list(handler))],
            orelse=[count, gast.Return(value=_load(result))], finalbody=[])

    # resolve() runs after the except clause, so an error while lowering the new
    # path is not reported as raised "during handling of" the PathMiss.
    body = [attempt([gast.Assign(targets=[_store(result)], value=call, type_comment=None)]),
            resolve]
    if fused is not None:
        path_fdef, entry_ref = fused
        stmts = list(path_fdef.body)
        # a parameter the path assigns to (it reuses dead names) gets a name of its own
        # here: a miss hands the cache the arguments as they were passed
        given = {p.name for p in params}
        written = sorted({n.id for n in gast.walk(path_fdef) if isinstance(n, gast.Name)
                          and n.id in given and not isinstance(n.ctx, (gast.Load, gast.Param))})
        if written:
            own_name = {p: namer.fresh(p) for p in written}
            for n in gast.walk(gast.Module(body=stmts, type_ignores=[])):
                if isinstance(n, gast.Name) and n.id in own_name:
                    n.id = own_name[n.id]
            stmts[:0] = [gast.Assign(targets=[_store(own_name[p])], value=_load(p),
                                     type_comment=None) for p in written]
        stmts[-1] = gast.Assign(targets=[_store(result)], value=stmts[-1].value,
                                type_comment=None)
        # a miss raised here (not in a function these statements call) is the path's own
        own = gast.If(test=gast.Compare(
            left=gast.Attribute(value=gast.Attribute(value=_load(miss), attr="__traceback__",
                                                     ctx=gast.Load()),
                                attr="tb_next", ctx=gast.Load()),
            ops=[gast.Is()], comparators=[_const(None)]),
            body=[gast.Assign(targets=[gast.Attribute(value=_load(miss), attr="path",
                                                      ctx=gast.Store())],
                              value=_load(bind("entry", entry_ref)), type_comment=None)],
            orelse=[])
        body = [attempt(stmts, [own]), resolve]
    fdef = gast.FunctionDef(name=name, args=args, body=body, decorator_list=[], returns=None,
                            type_comment=None, type_params=[])
    return Emitted(fdef, namespace, [])


def _names(node) -> set:
    return {n.id for n in gast.walk(node) if isinstance(n, gast.Name)}


_SCOPES = (gast.Return, gast.Yield, gast.YieldFrom, gast.Await, gast.Global, gast.Nonlocal,
           gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef, gast.Lambda)


def fusible(source: str, params) -> "gast.FunctionDef | None":
    """The ``FunctionDef`` of a path's generated ``source``, if its statements can run
    inline in a wrapper with parameters ``params`` (names): the path takes exactly those
    parameters, by position, and its only ``return`` is its last statement, with nothing
    that opens a scope (``def``, ``lambda``, ``global``, ...).  Else ``None``."""
    try:
        fdef = gast.parse(source).body[0]
    except (SyntaxError, IndexError):
        return None
    a = fdef.args if isinstance(fdef, gast.FunctionDef) else None
    if a is None or a.posonlyargs or a.vararg or a.kwonlyargs or a.kwarg or a.defaults \
            or [x.id for x in a.args] != list(params):
        return None
    body = fdef.body
    if not body or not isinstance(body[-1], gast.Return) or body[-1].value is None:
        return None
    for stmt in body[:-1]:
        if any(isinstance(n, _SCOPES) for n in gast.walk(stmt)):
            return None
    if any(isinstance(n, _SCOPES) for n in gast.walk(body[-1].value)):
        return None
    return fdef


# The dispatchers and their copies, whose code objects swap() changes: a gradient made of
# one of them does not watch its __code__ (api._State), which is theirs to change.
swapped: "weakref.WeakSet" = weakref.WeakSet()


# Paths longer than this are not fused: fusing saves one call (tens of nanoseconds) and
# costs a parse and a compile of the path's source again.
_FUSE_LINES = 200


def fuse(d, cache, entry, name, params, check=None, check_names=()) -> None:
    """After a build: fuse the first compiled path of the dispatcher ``d`` (of ``cache``,
    parameters ``params``) into a code object of its own, once; :func:`swap` makes it the
    code of ``d`` and its copies while that path is the current one.

    ``d`` carries ``plain`` (its own code), ``wrappers`` (its copies: a WeakSet),
    ``build`` and ``fused`` (``None`` until tried).  ``check``: a statement the fused
    code starts with, as the plain one does (the gradient's state check), reading the
    globals ``check_names``.  The fused code runs in the globals of ``d`` and of each
    copy (one dict, or one each), so the path's globals are added to every one of them,
    and only if no name there is bound to another object already (nothing is removed
    later: a call may still be running the fused code).  Copies are made under the
    cache's lock, as this runs."""
    if d is None or d.fused is not None or entry.program is not None or entry.fn is None:
        return
    with cache.lock:
        if d.fused is not None:
            return
        d.fused = False  # tried once
        if len(entry._lines) > _FUSE_LINES:
            return  # a long path: the call it saves is nothing beside it, parsing is not
        fdef = fusible(entry.source, [p.name for p in params])
        if fdef is None or set(check_names) & _names(fdef):
            return
        ref = weakref.ref(entry)
        emitted = emit_dispatcher(name, params, cache.slot, cache, d.build, fused=(fdef, ref),
                                  reserved=check_names)
        if check is not None:
            emitted.fdef.body.insert(0, check)
        names = {k: v for k, v in entry.fn.__globals__.items() if k != "__builtins__"}
        if any(k in names and names[k] is not v for k, v in emitted.namespace.items()):
            return
        names.update(emitted.namespace)
        dicts = list({id(g): g for g in [d.__globals__, *(w.__globals__ for w in d.wrappers)]
                      }.values())
        if any(k in g and g[k] is not v for g in dicts for k, v in names.items()):
            return
        emitted.namespace = names
        fn, _, _ = compile_function(emitted, f"{name} dispatcher fused")
        for g in dicts:
            g.update(names)
        d.fused = (ref, fn.__code__, fn)  # fn holds the fused code's lines in linecache
        cache.on_current = functools.partial(swap, d)
        swap(d, cache.current)


def swap(d, entry) -> None:
    """The dispatcher ``d`` and its copies run the fused code while ``entry``, the new
    current path, is the fused one, and the plain code otherwise.  (Called by the cache,
    under its lock, whenever its current path changes; a call that began with the other
    code object is right either way: each runs the guards of the path it calls.)"""
    fused = d.fused
    code = fused[1] if fused and entry is not None and fused[0]() is entry else d.plain
    if d.__code__ is not code:
        for w in [d, *d.wrappers]:
            w.__code__ = code
