"""Errors that name the argument, the value given and what is allowed."""
from __future__ import annotations

import difflib
import math
import numbers
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
    """Raise if a numeric parameter is not a finite number inside ``[low, high]`` (``(low, high]`` with ``low_open``).

    >>> check_range("FineTune", "lr", "abc", 0, low_open=True)
    Traceback (most recent call last):
    ...
    transferkit.errors.TransferkitError: The 'lr' parameter of FineTune must be a finite number in (0, None]; got 'abc' (a str).
    """
    lo = "(" if low_open else "["
    allowed = f"in {lo}{low}, {high}]"
    if not _is_real(value) or not math.isfinite(value):
        kind = "" if _is_real(value) else f" (a {type(value).__name__})"
        raise TransferkitError(f"The {name!r} parameter of {owner} must be a finite number {allowed}; got {value!r}{kind}.")
    bad = False
    if low is not None:
        bad = value <= low if low_open else value < low
    if not bad and high is not None:
        bad = value > high
    if bad:
        raise TransferkitError(f"The {name!r} parameter of {owner} must be {allowed}; got {value!r}.")


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def nearest(name: str, valid: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest valid name (difflib), or ''."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def one_paragraph(text: str) -> str:
    """Collapse a message onto one line (no blank lines or line breaks)."""
    return " ".join(str(text).split())
