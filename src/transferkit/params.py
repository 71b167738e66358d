"""Parameter constraints, declared once per class and checked in one place.

A strategy states what each of its parameters accepts in ``_parameter_constraints``, as scikit-learn's estimators
do: the parameter's name -> a list of constraints, any one of which a valid value satisfies (``None`` in the list
allows None). :func:`check_params` checks a dict of values against them and raises one
:class:`~transferkit.errors.TransferkitError` naming the parameter, the owner, what is allowed and the value given.
The same constraints describe the parameters to a user (``transferkit strategies --params NAME``).

The model is scikit-learn's ``sklearn.utils._param_validation`` (``Interval``, ``StrOptions``); that module is
private and its messages are worded for scikit-learn's estimators, so the few constraint kinds needed here are
written out, with the error texts this project's command line promises.
"""
from __future__ import annotations

import math
import numbers

from .errors import TransferkitError, nearest

__all__ = ["Constraint", "Interval", "Options", "Kind", "ListOf", "BOOL", "STR", "DICT", "check_params", "describe"]


class Constraint:
    """One kind of value a parameter accepts: ``is_satisfied_by(value, params)`` and a description in words."""

    def is_satisfied_by(self, value, params: dict) -> bool:
        raise NotImplementedError

    def describe(self, value=None, params: dict | None = None) -> str:
        """What it accepts, in the words of an error or help text; ``value`` (the one refused) may tailor it."""
        raise NotImplementedError

    def __str__(self):
        return self.describe()


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Interval(Constraint):
    """A number of ``kind`` (``int``: integers only; ``float``: any real) in a range; ``None`` bounds are open.

    ``closed`` is 'both', 'left', 'right' or 'neither'. A bound may name another parameter (``Interval(int, 0,
    "epochs")``: no more than ``epochs``), resolved against the values being checked. NaN and infinity are refused.
    """

    def __init__(self, kind: type, low=None, high=None, *, closed: str = "both"):
        if kind not in (int, float) or closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval({kind!r}, closed={closed!r})")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def _bounds(self, params) -> tuple:
        def resolve(b):  # a parameter's name: its value when checking, the name when describing
            return params[b] if isinstance(b, str) and params and b in params else b
        return resolve(self.low), resolve(self.high)

    def accepts_type(self, value) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) if self.kind is int else _is_real(value)

    def is_satisfied_by(self, value, params: dict) -> bool:
        if not self.accepts_type(value) or not math.isfinite(value):
            return False
        low, high = self._bounds(params)
        if _is_real(low) and (value < low or (value == low and self.closed in ("right", "neither"))):
            return False
        if _is_real(high) and (value > high or (value == high and self.closed in ("left", "neither"))):
            return False
        return True

    def describe(self, value=None, params: dict | None = None) -> str:
        word = "an integer" if self.kind is int else "a number"
        if value is not None and not _is_real(value):
            return word
        if value is not None and not math.isfinite(value):
            return "a finite number"
        if value is not None and not self.accepts_type(value):
            return word
        low, high = self._bounds(params or {})
        if low is None and high is None:
            return word
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        in_range = f"in {left}{low}, {high}{right}"
        return in_range if value is not None else f"{word} {in_range}"


class Options(Constraint):
    """One of a fixed set of values (strings, mostly)."""

    def __init__(self, *options):
        self.options = tuple(options)

    def is_satisfied_by(self, value, params: dict) -> bool:
        return isinstance(value, (str, numbers.Number)) and not isinstance(value, bool) and value in self.options

    def describe(self, value=None, params: dict | None = None) -> str:
        return "one of {" + ", ".join(repr(o) for o in sorted(self.options, key=str)) + "}"


class Kind(Constraint):
    """Any instance of ``types`` (a type or a tuple of them), described by ``words``; bool is not a number here."""

    def __init__(self, types, words: str):
        self.types, self.words = types, words

    def is_satisfied_by(self, value, params: dict) -> bool:
        if isinstance(value, bool) and bool not in (self.types if isinstance(self.types, tuple) else (self.types,)):
            return False
        return isinstance(value, self.types)

    def describe(self, value=None, params: dict | None = None) -> str:
        return self.words


class ListOf(Constraint):
    """A list or tuple whose every item satisfies ``item`` (and, with ``length``, of that many items)."""

    def __init__(self, item: Constraint, *, length: int | None = None, min_length: int = 0):
        self.item, self.length, self.min_length = item, length, min_length

    def is_satisfied_by(self, value, params: dict) -> bool:
        if not isinstance(value, (list, tuple)) or len(value) < self.min_length:
            return False
        if self.length is not None and len(value) != self.length:
            return False
        return all(self.item.is_satisfied_by(v, params) for v in value)

    def describe(self, value=None, params: dict | None = None) -> str:
        size = f"{self.length} items" if self.length else ("items, at least one" if self.min_length else "items")
        return f"a list of {size} ({self.item.describe()})"


BOOL = Kind(bool, "true or false")
STR = Kind(str, "a string")
DICT = Kind(dict, "a mapping {key: value}")


def describe(constraints: list) -> str:
    """The constraints of one parameter, in words, alternatives separated by ' | ' (the help of ``transferkit
    strategies --params``)."""
    parts = [c.describe() for c in constraints if c is not None]
    return " | ".join(parts + (["None"] if None in constraints else []))


def check_params(owner: str, constraints: dict, params: dict) -> None:
    """Check every value of ``params`` that has constraints; raise on the first that satisfies none of them.

    >>> check_params("FineTune", {"lr": [Interval(float, 0, None, closed="right")]}, {"lr": 0})
    Traceback (most recent call last):
    ...
    transferkit.errors.TransferkitError: The 'lr' parameter of FineTune must be in (0, None]; got 0.
    """
    for name, value in params.items():
        allowed = constraints.get(name)
        if allowed is None:
            continue
        if value is None and None in allowed:
            continue
        if any(c is not None and c.is_satisfied_by(value, params) for c in allowed):
            continue
        raise TransferkitError(_message(owner, name, value, allowed, params))


def _message(owner: str, name: str, value, allowed: list, params: dict) -> str:
    parts = list(dict.fromkeys(c.describe(value, params) for c in allowed if c is not None))
    if None in allowed:
        parts.append("None")
    if isinstance(value, float) and not math.isfinite(value):
        note = " (NaN and infinity are never valid)"
    elif value is not None and not any(_same_kind(c, value) for c in allowed if c is not None):
        note = f" (a {type(value).__name__})"
    else:
        note = ""
    hint = ""
    if isinstance(value, str):
        options = [o for c in allowed if isinstance(c, Options) for o in c.options if isinstance(o, str)]
        hint = nearest(value, options)
    return f"The {name!r} parameter of {owner} must be {' or '.join(parts)}; got {value!r}{note}.{hint}"


def _same_kind(constraint: Constraint, value) -> bool:
    """Whether ``value`` has the type the constraint is about (then the message names the range, not the type)."""
    if isinstance(constraint, Interval):
        return constraint.accepts_type(value)
    if isinstance(constraint, Options):
        return any(type(value) is type(o) for o in constraint.options)
    if isinstance(constraint, ListOf):
        return isinstance(value, (list, tuple))
    return constraint.is_satisfied_by(value, {})
