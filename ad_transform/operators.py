"""Python's operators, attributes and f-strings on the interpreter's values.

The :class:`Operators` mixin of :class:`~ad_transform.lower.Lowerer`.  Guarantees: an
operator on constants only is computed now (folded); on a traced value it appends one
equation of the operator's primitive (or inlines a user class's dunder method); ``and``,
``or``, chained comparisons and conditional expressions are decided on concrete truth
values through :meth:`~ad_transform.outside.OutsideValues.truth`, which guards them; an
f-string's traced values are guarded by value (the text is part of the path); attributes
of traced values go through the attribute rules (``x.T``, ``x.shape``), and a derivative
of an attribute without a rule is refused, located.
"""
from __future__ import annotations

import operator
import types

import gast

from .errors import MissingRule, UnsupportedSyntax
from .ir import Var
from .outside import _user_attribute
from .pytree import STATIC
from .rules import builtins as B
from .rules import lookup, lookup_attr
from .calls import _describe
from .scope import Closure
from .values import VarMethod, _contains_var, _is_user_code, _user_instance

__all__ = ["Operators", "BINOPS", "UNARY", "COMPARE"]

BINOPS = {
    gast.Add: operator.add, gast.Sub: operator.sub, gast.Mult: operator.mul,
    gast.Div: operator.truediv, gast.FloorDiv: operator.floordiv, gast.Mod: operator.mod,
    gast.Pow: operator.pow, gast.MatMult: operator.matmul, gast.BitAnd: operator.and_,
    gast.BitOr: operator.or_, gast.BitXor: operator.xor, gast.LShift: operator.lshift,
    gast.RShift: operator.rshift,
}
UNARY = {gast.USub: operator.neg, gast.UAdd: operator.pos, gast.Not: operator.not_,
         gast.Invert: operator.invert}
COMPARE = {
    gast.Lt: operator.lt, gast.LtE: operator.le, gast.Gt: operator.gt, gast.GtE: operator.ge,
    gast.Eq: operator.eq, gast.NotEq: operator.ne, gast.Is: operator.is_,
    gast.IsNot: operator.is_not, gast.In: lambda a, b: a in b,
    gast.NotIn: lambda a, b: a not in b,
}


class Operators:
    """Operators, attributes and f-strings (see the module docstring)."""

    def apply(self, fn, ins, node, hint=None, params=None):
        prim = lookup(fn)
        if prim is None:
            raise MissingRule(f"no derivative rule for {_describe(fn)}", self.loc(node))
        self.b.loc = self.loc(node)
        return self.b.apply(prim, ins, params, hint)

    def e_BinOp(self, node, hint):
        return self.binop(type(node.op), self.eval(node.left), self.eval(node.right), node, hint)

    def binop(self, opcls, left, right, node, hint=None):
        fn = BINOPS[opcls]
        lv, rv = isinstance(left, Var), isinstance(right, Var)
        if _user_instance(self.sig(left) if lv else left) or \
                _user_instance(self.sig(right) if rv else right):
            return self.user_operator(fn, left, right, node, hint)
        if not lv and not rv:
            return fn(left, right)  # constants, and list/tuple concatenation
        if isinstance(left, (list, tuple)) or isinstance(right, (list, tuple)):
            return fn(self.concrete(left, node), self.concrete(right, node))
        return self.apply(fn, (left, right), node, hint)

    def e_UnaryOp(self, node, hint):
        x = self.eval(node.operand)
        fn = UNARY[type(node.op)]
        if not isinstance(x, Var):
            return fn(x)
        return self.apply(fn, (x,), node, hint)

    def e_BoolOp(self, node, hint):
        is_and = isinstance(node.op, gast.And)
        for expr in node.values[:-1]:
            v = self.eval(expr)
            if self.truth(v, expr) != is_and:
                return v
        return self.eval(node.values[-1])

    def e_Compare(self, node, hint):
        left = self.eval(node.left)
        result = True
        for i, (op, comp) in enumerate(zip(node.ops, node.comparators)):
            right = self.eval(comp)
            result = self.compare(type(op), left, right, node, hint)
            if i + 1 < len(node.ops) and not self.truth(result, node):
                return result
            left = right
        return result

    def compare(self, opcls, left, right, node, hint=None):
        fn = COMPARE[opcls]
        lv, rv = isinstance(left, Var), isinstance(right, Var)
        if opcls in (gast.In, gast.NotIn) and type(right) in (list, tuple) and (
                _contains_var(right) or lv):  # item by item, as Python does (see call_...)
            found = self._seq_method(right, "__contains__", [left], node)
            return found if opcls is gast.In else not found
        if not lv and not rv:
            return fn(left, right)
        if opcls in (gast.Is, gast.IsNot) and (left is None or right is None):
            return fn(self.sig(left), self.sig(right))  # decided by the type guard
        if opcls in (gast.In, gast.NotIn):
            if _contains_var(right) and not isinstance(right, Var):
                raise MissingRule("'in' on a container holding traced values is not supported",
                                  self.loc(node))
            prim = B.contains if opcls is gast.In else B.not_in
            self.b.loc = self.loc(node)
            return self.b.apply(prim, (left, right), None, hint)
        return self.apply(fn, (left, right), node, hint)

    def e_IfExp(self, node, hint):
        if self.truth(self.eval(node.test), node.test):
            return self.eval(node.body, hint)
        return self.eval(node.orelse, hint)

    def e_Lambda(self, node, hint):
        return self._closure(node)

    def e_JoinedStr(self, node, hint):
        parts = []
        for v in node.values:
            parts.append(v.value if isinstance(v, gast.Constant) else self.e_FormattedValue(v, None))
        return "".join(parts)

    def e_FormattedValue(self, node, hint):
        # The text is baked into the path, so a traced scalar is guarded like an index.
        # The text is baked into the path: every traced value in it is guarded by value
        # (an array too: f"{x}" shows its elements).
        value = self.plain(self.eval(node.value), node)
        conv = {115: str, 114: repr, 97: ascii}.get(node.conversion)
        if conv is not None:
            value = conv(value)
        spec = self.e_JoinedStr(node.format_spec, None) if node.format_spec else ""
        return format(value, spec)

    def e_Starred(self, node, hint):
        raise UnsupportedSyntax("starred expression here", self.loc(node))

    def e_Attribute(self, node, hint):
        obj = self.eval(node.value)
        if isinstance(obj, Var):
            return self.var_attr(obj, node.attr, node, hint)
        if isinstance(obj, Closure):
            raise UnsupportedSyntax("attribute of a local function", self.loc(node))
        value = getattr(obj, node.attr)
        if isinstance(value, Var) or id(obj) in self.tree_objects and isinstance(value, STATIC):
            return value  # a leaf of a wrt tree: guarded by its structure guard
        if isinstance(value, types.MethodType) and _is_user_code(value.__func__):
            return self._bound_method(obj, node.attr, value, node)
        if _user_attribute(obj, node.attr):
            return self._from_attribute(obj, node.attr, value, node)
        return value

    def var_attr(self, var, name, node, hint=None):
        value = self.sig(var)
        attr_rule = lookup_attr(value, name)
        if attr_rule is not None:
            self.b.loc = self.loc(node)
            return attr_rule(var)
        if isinstance(value, (int, float)) and name == "real":
            return var
        if isinstance(value, (int, float)) and name == "imag":
            return 0.0 * value
        attr = getattr(value, name)  # AttributeError as Python would raise it
        if callable(attr):
            return VarMethod(var, name)
        if var in self.b.active:
            raise MissingRule(f"no derivative rule for attribute .{name} of "
                              f"{type(value).__name__}", self.loc(node))
        self.b.loc = self.loc(node)
        return self.b.record(B.getattr_(name), (var,), hint=hint or name)
