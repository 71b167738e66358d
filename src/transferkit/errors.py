"""Errors that name the argument, the value given and what is allowed."""
from __future__ import annotations

from collections.abc import Iterable


class TransferkitError(ValueError):
    """Base class for user-facing errors (bad arguments, bad files, bad data)."""


class ImageLoadError(TransferkitError):
    """An image file could not be read; the message names the file."""


class DataError(TransferkitError):
    """A dataset is unusable as given (empty class, mismatched classes, too few images...)."""


class DivergenceError(TransferkitError):
    """Training produced a non-finite loss."""


def check_choice(owner: str, name: str, value, allowed: Iterable) -> None:
    """Raise if ``value`` is not one of ``allowed``.

    >>> check_choice("FineTune", "freeze", "bacbone", {"none", "backbone"})
    Traceback (most recent call last):
    ...
    transferkit.errors.TransferkitError: The 'freeze' parameter of FineTune must be one of {'backbone', 'none'}; got 'bacbone'.
    """
    allowed = list(allowed)
    if value not in allowed:
        shown = "{" + ", ".join(repr(a) for a in sorted(allowed, key=str)) + "}"
        raise TransferkitError(f"The {name!r} parameter of {owner} must be one of {shown}; got {value!r}.")


def check_range(owner: str, name: str, value, low=None, high=None, *, low_open=False) -> None:
    """Raise if a numeric parameter is outside ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    bad = value is None
    if not bad and low is not None:
        bad = value <= low if low_open else value < low
    if not bad and high is not None:
        bad = value > high
    if bad:
        lo = "(" if low_open else "["
        raise TransferkitError(
            f"The {name!r} parameter of {owner} must be in {lo}{low}, {high}]; got {value!r}."
        )
