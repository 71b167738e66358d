"""Errors that name the argument, the value given and what is allowed."""
from __future__ import annotations

import re
from collections.abc import Iterable


class TransferkitError(ValueError):
    """Base class for user-facing errors (bad arguments, bad files, bad data).

    When PyTorch re-raises an error from a DataLoader worker process it builds the exception from a
    message holding the worker's whole traceback; the constructor keeps only the original message
    (which names the file) and notes the worker, so the user never sees a bare worker traceback.
    """

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str) and args[0].startswith("Caught "):
            args = (_unwrap_worker_message(type(self), args[0]),)
        super().__init__(*args)


class ImageLoadError(TransferkitError):
    """An image file could not be read; the message names the file."""


class DataError(TransferkitError):
    """A dataset is unusable as given (empty class, mismatched classes, too few images...)."""


class DivergenceError(TransferkitError):
    """Training produced a non-finite loss."""


def _unwrap_worker_message(cls, msg: str) -> str:
    """'Caught ImageLoadError in DataLoader worker process 0.\nOriginal Traceback ...\nmod.ImageLoadError: text'
    -> 'text (in DataLoader worker process 0)'."""
    first, _, rest = msg.partition("\n")
    m = re.match(r"Caught (\w+) (in .*?)\.?$", first)
    if not m or not rest.startswith("Original Traceback"):
        return msg
    tail = re.search(rf"^(?:[\w.]+\.)?{re.escape(m.group(1))}: (.*)\Z", rest, re.M | re.S)
    return f"{tail.group(1).rstrip()} ({m.group(2)})" if tail else msg


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
