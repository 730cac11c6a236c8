"""Programs -> a gast ``FunctionDef``.  The only module that builds AST.

Guarantees of :func:`emit`: one statement per equation, in program order (so
primal first, then adjoints in reverse; a scatter printed as NumPy is two: its
new buffer, then the write), a marker before each block of equations that
come from one source line in one loop iteration (``to_source`` turns markers
into comments), a guard becomes ``if <check>: raise PathMiss(i, observed)``
(a value guard leaves out the type check a type guard made before it),
constants are printed where Python can spell them, and every other object the
code refers to is bound in the returned namespace under a name that no local
variable uses and that says what it is.
"""
from __future__ import annotations

import builtins
import math

import gast
import numpy as np

from . import runtime
from .ir import COND, LOOP, Const, Eqn, Program, Var, cond_of
from .registers import last_uses, plan_inplace, reuse_names, scatter_printed, writes_into

__all__ = ["emit", "Emitted"]

from .loops_emit import (_const, _hoistable, _load, _marker, _store, emit_block, emit_loop,  # noqa: E402
                         hoist_chain)  # (loops_emit imports emit lazily)

_BINOPS = {"+": gast.Add, "-": gast.Sub, "*": gast.Mult, "/": gast.Div, "//": gast.FloorDiv,
           "%": gast.Mod, "**": gast.Pow, "@": gast.MatMult, "&": gast.BitAnd, "|": gast.BitOr,
           "^": gast.BitXor, "<<": gast.LShift, ">>": gast.RShift}
_UNARY = {"-": gast.USub, "+": gast.UAdd, "not": gast.Not, "~": gast.Invert}
_CMP = {"<": gast.Lt, "<=": gast.LtE, ">": gast.Gt, ">=": gast.GtE, "==": gast.Eq,
        "!=": gast.NotEq, "is": gast.Is, "is not": gast.IsNot, "in": gast.In,
        "not in": gast.NotIn}
_LITERALS = (bool, int, str, type(None))



class Emitted:
    """An emitted derivative: its gast ``FunctionDef``, the names it uses and its comments."""

    def __init__(self, fdef, namespace, comments):
        self.fdef, self.namespace, self.comments = fdef, namespace, comments


class _Emitter:
    def __init__(self, prog: Program, values: dict, inplace: bool = True):
        self.prog = prog
        self.allow_inplace = inplace  # may write into dead operands (plan_inplace)
        self.values = values  # Var -> value on the first call: read while emitting, not kept
        self.namer = prog.namer
        self.namespace: dict = {}
        self._bound: dict = {}  # id(obj) -> name
        self.names: dict = {}  # Var -> printed name, where it reuses a dead value's name
        self.inplace: dict = {}  # equation index -> (ufunc, operand it writes into)
        self.last: dict = {}
        self.typed: dict = {}  # Var -> its exact type, checked by a type guard emitted before
        # (bound root, attributes) -> local name, of callees hoisted out of rolled loops;
        # while a rolled loop is emitted, ``hoist`` holds the ones its body calls
        self.hoisted: dict = {}
        self.hoist: dict | None = None
        self.inline: dict = {}  # Var -> its expression, written where it is read (loops_emit)

    def bind(self, obj, hint: str) -> str:
        """A global name for ``obj`` in the generated code's namespace."""
        key = id(obj)
        if key not in self._bound:
            name = self.namer.fresh(hint, global_name=True)
            self.namespace[name] = obj
            self._bound[key] = name
        return self._bound[key]

    def atom(self, x):
        if isinstance(x, Var):
            if x in self.inline:
                return self.inline.pop(x)
            return _load(self.names.get(x, x.name))
        return self.const(x.value if isinstance(x, Const) else x)

    def const(self, v):
        if type(v) is int and v < 0:  # astunparse prints Constant(-1) bare: -1 ** n is -(1 ** n)
            return gast.UnaryOp(op=gast.USub(), operand=_const(-v))
        if isinstance(v, _LITERALS):
            return _const(v)
        if type(v) is float and math.isfinite(v):
            if v < 0 or (v == 0 and math.copysign(1.0, v) < 0):
                return gast.UnaryOp(op=gast.USub(), operand=_const(-v))
            return _const(v)
        if type(v) is tuple:  # (1, slice(None, 2, None)): each item as it is printed
            return gast.Tuple(elts=[self.const(i) for i in v], ctx=gast.Load())
        if v is Ellipsis:
            return _const(...)
        if type(v) is slice and all(_visible(p) for p in (v.start, v.stop, v.step)):
            return gast.Call(func=_load(self.bind(slice, "slice")), keywords=[],
                             args=[self.const(p) for p in (v.start, v.stop, v.step)])
        if _visible_scalar(v):  # np.float64(2.5): what it is, where it is used
            return gast.Call(func=self.callee("np", np, (type(v).__name__,)),
                             args=[self.const(v.item())], keywords=[])
        return _load(self.bind(v, _hint_for(v)))

    def ref(self, root_name: str, root_obj, attrs):
        node = _load(self.bind(root_obj, root_name))
        for a in attrs:
            node = gast.Attribute(value=node, attr=a, ctx=gast.Load())
        return node

    def callee(self, root_name: str, root_obj, attrs):
        """``root.attr...`` called: in a rolled loop, a local bound before it (loops_emit)."""
        if self.hoist is None or not attrs or not _hoistable(root_obj, attrs):
            return self.ref(root_name, root_obj, attrs)
        return hoist_chain(self, self.bind(root_obj, root_name), tuple(attrs))

    def index(self, x):
        v = x.value if isinstance(x, Const) else None
        if type(v) is tuple and v and all(type(i) is slice or _visible(i) for i in v):
            return gast.Tuple(elts=[self.index(Const(i)) for i in v], ctx=gast.Load())
        if isinstance(v, slice) and all(p is None or type(p) is int for p in (v.start, v.stop, v.step)):
            return gast.Slice(*(None if p is None else self.const(p) for p in (v.start, v.stop, v.step)))
        return self.atom(x)

    def scatter(self, e: Eqn, name: str) -> list:
        """``_rt.getitem_vjp(g, shape, dtype, idx)`` (``g`` into zeros, at ``idx``) as the
        NumPy it runs, where the index is known: the buffer is new, so writing is safe."""
        g, shape, dtype, idx = e.ins
        zeros = gast.Call(func=self.callee("np", np, ("zeros",)), keywords=[],
                          args=[self.atom(shape), self.atom(dtype)])
        target = gast.Subscript(value=_load(name), slice=self.index(idx), ctx=gast.Store())
        return [gast.Assign(targets=[_store(name)], value=zeros, type_comment=None),
                gast.Assign(targets=[target], value=self.atom(g), type_comment=None)]

    def keywords(self, e: Eqn) -> list:
        return [gast.keyword(arg=k, value=self.const(v)) for k, v in e.params]

    # -- one equation -> one statement ---------------------------------------------
    def expr(self, e: Eqn):
        form = e.prim.form
        kind = form[0]
        ins = e.ins
        kws = self.keywords(e)
        if kind == "binop":
            return gast.BinOp(left=self.atom(ins[0]), op=_BINOPS[form[1]](), right=self.atom(ins[1]))
        if kind == "unary":
            return gast.UnaryOp(op=_UNARY[form[1]](), operand=self.atom(ins[0]))
        if kind == "compare":
            return gast.Compare(left=self.atom(ins[0]), ops=[_CMP[form[1]]()],
                                comparators=[self.atom(ins[1])])
        if kind == "call":
            root_obj = e.prim.root if e.prim.root is not None else getattr(builtins, form[1])
            return gast.Call(func=self.callee(form[1], root_obj, form[2:]),
                             args=[self.atom(x) for x in ins], keywords=kws)
        if kind == "call_obj":
            fn = ins[0].value
            return gast.Call(func=self.atom(ins[0]) if not callable(fn) else
                             _load(self.bind(fn, _hint_for(fn))),
                             args=[self.atom(x) for x in ins[1:]], keywords=kws)
        if kind == "method":
            return gast.Call(func=gast.Attribute(value=self.atom(ins[0]), attr=form[1],
                                                 ctx=gast.Load()),
                             args=[self.atom(x) for x in ins[1:]], keywords=kws)
        if kind == "getattr":
            return gast.Attribute(value=self.atom(ins[0]), attr=form[1], ctx=gast.Load())
        if kind == "getitem":
            return gast.Subscript(value=self.atom(ins[0]), slice=self.index(ins[1]),
                                  ctx=gast.Load())
        raise NotImplementedError(f"no emitter for form {form}")

    def guard(self, e: Eqn):
        params = dict(e.params)
        kind = e.prim.op
        expect, index = params["expect"], params["index"]
        if kind == "truth":
            test = self.atom(e.ins[0])
            if expect:
                test = gast.UnaryOp(op=gast.Not(), operand=test)
            observed = _const(not expect)
        elif kind == "eq":  # what runtime.same checks: types too (1, 1.0 and True differ)
            if type(expect) in (int, str, bytes) or (
                    type(expect) is float and expect == expect and expect != 0.0):
                test = gast.Compare(left=self.atom(e.ins[0]), ops=[gast.NotEq()],
                                    comparators=[self.const(expect)])
                x = e.ins[0]
                if not isinstance(x, Var) or self.typed.get(x) is not type(expect):  # unchecked
                    type_ = _load(self.bind(builtins.type, "type"))
                    test = gast.BoolOp(op=gast.Or(), values=[
                        gast.Compare(left=gast.Call(func=type_, args=[self.atom(e.ins[0])],
                                                    keywords=[]),
                                     ops=[gast.IsNot()], comparators=[self.const(type(expect))]),
                        test])
            elif type(expect) in (bool, type(None)):
                test = gast.Compare(left=self.atom(e.ins[0]), ops=[gast.IsNot()],
                                    comparators=[self.const(expect)])
            else:
                test = gast.UnaryOp(op=gast.Not(), operand=gast.Call(
                    func=self.callee("_rt", runtime, ("same",)),
                    args=[self.atom(e.ins[0]), self.const(expect)], keywords=[]))
            observed = self.atom(e.ins[0])
        elif kind == "is":
            test = gast.Compare(left=self.atom(e.ins[0]), ops=[gast.IsNot()],
                                comparators=[self.const(expect)])
            observed = self.atom(e.ins[0])
        elif kind == "types":
            checks = [c for x, sig in zip(e.ins, expect) for c in self.signature_checks(x, sig)]
            self.typed.update((x, sig) for x, sig in zip(e.ins, expect)
                              if isinstance(x, Var) and isinstance(sig, type))
            test = checks[0] if len(checks) == 1 else gast.BoolOp(op=gast.Or(), values=checks)
            observed = gast.Call(func=self.ref("_rt", runtime, ("signatures",)),
                                 args=[self.atom(x) for x in e.ins], keywords=[])
        else:
            raise NotImplementedError(f"no emitter for guard {kind}")
        miss = gast.Call(func=self.ref("_rt", runtime, ("PathMiss",)),
                         args=[_const(index), observed], keywords=[])
        return gast.If(test=test, body=[gast.Raise(exc=miss, cause=None)], orelse=[])

    def signature_checks(self, x, sig):
        """Tests that are true when ``x`` does not match ``runtime.signature`` ``sig``."""
        type_ = _load(self.bind(builtins.type, "type"))
        kind = sig[0] if isinstance(sig, tuple) else sig
        checks = [gast.Compare(left=gast.Call(func=type_, args=[self.atom(x)], keywords=[]),
                               ops=[gast.IsNot()], comparators=[self.const(kind)])]
        if isinstance(sig, tuple):  # an array: (ndarray, shape, dtype)
            _, shape, dtype = sig
            for attr, want in (("shape", self.const(shape)),
                               ("dtype", _load(self.bind(np.dtype(dtype), np.dtype(dtype).name)))):
                checks.append(gast.Compare(
                    left=gast.Attribute(value=self.atom(x), attr=attr, ctx=gast.Load()),
                    ops=[gast.NotEq()], comparators=[want]))
        return checks

    def output(self, node, items):
        """The value returned: the outputs (``items``, an iterator) nested as ``node``
        of ``out_tree`` says (tuples only).  (A method: a recursive closure would be a
        reference cycle holding the emitter and its values.)"""
        if node[0] == "leaf":
            return self.atom(next(items))
        assert node[0] == "tuple", f"an emitted program returns tuples, not {node[0]}s"
        return gast.Tuple(elts=[self.output(c, items) for c in node[3]], ctx=gast.Load())

    def inplace_expr(self, e: Eqn, ufunc, target):
        kws = self.keywords(e)
        kws.append(gast.keyword(arg="out", value=self.atom(target)))
        return gast.Call(func=self.callee("np", np, (ufunc.__name__,)),
                         args=[self.atom(x) for x in e.ins], keywords=kws)

    def cond(self, e: Eqn, comments) -> list:
        """A merged ``if`` (:class:`~ad_transform.ir.Cond`): ``if test:`` with each
        branch's statements, each ending by binding the outputs; a source-line comment."""
        data = cond_of(e)
        label = "adjoint of " if e.phase == "adjoint" else ""
        marker = _marker(comments, f"{label}{e.loc.place() if e.loc else '?'}: {data.line}"
                                   "  (both branches)")
        arms = []
        for eqns, outs in ((data.then, data.then_outs), (data.orelse, data.else_outs)):
            stmts = emit_block(self, eqns, comments)  # (nested merged ifs come back here)
            for v, a in zip(data.outs, outs):
                stmts.append(gast.Assign(targets=[_store(self.names.get(v, v.name))],
                                         value=self.atom(a), type_comment=None))
            arms.append(stmts or [gast.Pass()])
        return [marker, gast.If(test=self.atom(data.test), body=arms[0], orelse=arms[1])]

    def function(self, name: str) -> Emitted:
        self.last = last_uses(self.prog)
        if self.allow_inplace:
            self.inplace = plan_inplace(self.prog, self.values, self.last)
        self.names = reuse_names(self.prog, self.last)
        body, comments = [], []
        block = None
        for index, e in enumerate(self.prog.eqns):
            phase = "adjoint" if e.phase == "adjoint" else "primal"  # tangents: with their line
            key = (phase, e.loc.file, e.loc.line, e.loc.trip) if e.loc else (phase, None)
            if key != block and e.loc is not None and e.prim is not LOOP and e.prim is not COND:
                block = key
                label = "adjoint of " if e.phase == "adjoint" else ""
                body.append(_marker(comments, f"{label}{e.loc.place()}: {e.loc.text.strip()}"))
            if e.prim is LOOP:  # a rolled loop: its own statements (loops_emit.py)
                body.extend(emit_loop(self, e, comments))
                block = None
            elif e.prim is COND:  # a merged if: an if statement (branches.py)
                body.extend(self.cond(e, comments))
                block = None
            elif e.out is None:
                body.append(self.guard(e))
            elif scatter_printed(e):
                body.extend(self.scatter(e, self.names.get(e.out, e.out.name)))
            elif writes_into(e) and self.atom(e.ins[0]).id == self.names.get(e.out, e.out.name):
                buf, idx, g = e.ins  # _rt.add_at(buf, idx, g), into buf: buf[idx] += g
                target = gast.Subscript(value=self.atom(buf), slice=self.index(idx),
                                        ctx=gast.Store())
                body.append(gast.AugAssign(target=target, op=gast.Add(), value=self.atom(g)))
            else:
                value = self.expr(e) if index not in self.inplace else \
                    self.inplace_expr(e, *self.inplace[index])
                body.append(gast.Assign(targets=[_store(self.names.get(e.out, e.out.name))],
                                        value=value,
                                        type_comment=None))
        body.append(gast.Return(value=self.output(self.prog.out_tree.node,
                                                  iter(self.prog.outputs))))
        args = gast.arguments(args=[gast.Name(id=v.name, ctx=gast.Param(), annotation=None,
                                              type_comment=None) for v in self.prog.inputs],
                              posonlyargs=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                              kwarg=None, defaults=[])
        fdef = gast.FunctionDef(name=name, args=args, body=body, decorator_list=[], returns=None,
                                type_comment=None, type_params=[])
        return Emitted(fdef, self.namespace, comments)

def _visible(v) -> bool:
    """``v`` is printed as a literal (``2.5``, ``-1``, ``None``), not bound by name."""
    return type(v) in (bool, int, str, type(None)) or (type(v) is float and math.isfinite(v))


def _visible_scalar(v) -> bool:
    """A NumPy scalar printed as ``np.float64(2.5)``: the type's name in NumPy is the type."""
    return (isinstance(v, np.generic) and getattr(np, type(v).__name__, None) is type(v)
            and _visible(v.item()) and type(v)(v.item()) == v)


def _hint_for(obj) -> str:
    """The name a constant is bound under: what it is (``inf``, ``zeros``, ``array``)."""
    if isinstance(obj, float):  # also np.float64, bound by name whatever its value
        if math.isfinite(obj):
            return type(obj).__name__
        return "inf" if obj == math.inf else "neg_inf" if obj == -math.inf else "nan"
    if isinstance(obj, np.ndarray):
        return "zeros" if not obj.any() else "ones" if (obj == 1).all() else "array"
    if isinstance(obj, dict):
        return "_globals"
    if type(obj).__name__ == "cell":
        return "_cell"
    name = getattr(obj, "__name__", None)
    if isinstance(name, str) and name.isidentifier():
        return name.rsplit(".", 1)[-1]
    kind = type(obj).__name__.lower()
    return kind if kind.isidentifier() else "constant"

def emit(prog: Program, values: dict, name: str, inplace: bool = True) -> Emitted:
    """Build the generated function for ``prog``, named ``name``; ``values`` are the
    concrete values of its variables (see :func:`ad_transform.registers.plan_inplace`).
    With ``inplace=False`` no NumPy operation writes into an operand (``out=``): the
    variant the lowering reads back when a derivative is differentiated again (nested.py)."""
    prog.namer.used.add(name)
    return _Emitter(prog, values, inplace).function(name)

