"""The wrapper users call: a generated function with the user's own signature.

Guarantees of :func:`emit_dispatcher`: the wrapper takes exactly the parameters of
the user's function (defaults included, no ``*args`` packing), calls the current
path's derivative, counts a hit, and hands a :class:`~ad_transform.runtime.PathMiss`
to the cache outside the ``except`` clause (so an error lowering the new path is not
reported as raised while handling the miss).  It builds its own small AST; the
derivative's AST is :mod:`ad_transform.emit`'s.
"""
from __future__ import annotations

import inspect

import gast

from . import runtime
from .emit import Emitted, _const, _load, _store
from .ir import Namer

__all__ = ["emit_dispatcher"]


def emit_dispatcher(name: str, params, slot_obj, cache_obj, build_obj) -> Emitted:
    """The wrapper users call: same signature as their function, no ``*args`` packing.

    ``params`` are the function's :class:`inspect.Parameter` s.  The body calls
    the current path's derivative ``slot[0](...)`` with one value per
    parameter; a :class:`PathMiss` goes to ``cache.resolve``; a hit is counted.
    """
    namer = Namer(reserved=[p.name for p in params] + [name])
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
    resolve = gast.Call(func=gast.Attribute(value=_load(cache), attr="resolve", ctx=gast.Load()),
                        args=[gast.Tuple(elts=[_load(p.name) for p in params], ctx=gast.Load()),
                              _load(caught), _load(build)], keywords=[])
    counter = bind("hits", cache_obj.counter)
    count = gast.Expr(value=gast.Call(func=_load(bind("next", next)), args=[_load(counter)],
                                      keywords=[]))
    # resolve() runs after the except clause, so an error while lowering the new
    # path is not reported as raised "during handling of" the PathMiss.
    body = [gast.Try(
        body=[gast.Assign(targets=[_store(result)], value=call, type_comment=None)],
        handlers=[gast.ExceptHandler(type=_load(miss_t), name=_store(miss),
                                     body=[gast.Assign(targets=[_store(caught)], value=_load(miss),
                                                       type_comment=None)])],
        orelse=[count, gast.Return(value=_load(result))], finalbody=[]),
        gast.Return(value=resolve)]
    fdef = gast.FunctionDef(name=name, args=args, body=body, decorator_list=[], returns=None,
                            type_comment=None, type_params=[])
    return Emitted(fdef, namespace, [])
