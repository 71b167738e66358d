"""Errors that name the argument, the value given and what is allowed."""
from __future__ import annotations

import difflib
import errno
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


class OutputError(TransferkitError):
    """A path given for output (``--out``, an export file, the cache) cannot be written; the message names it."""


_IO_HINTS = {
    errno.EACCES: "you do not have permission there: give another location, or fix its permissions",
    errno.EPERM: "the operation is not permitted there: give another location",
    errno.EROFS: "it is on a read-only file system: give a writable location",
    errno.ENOSPC: "the disk is full: free some space or give a location on another disk",
    errno.EDQUOT: "your disk quota is exhausted: free some space or give another location",
    errno.ENOENT: "it does not exist: check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder where a file is expected: give a file path",
    errno.ENAMETOOLONG: "the name is too long for the file system: give a shorter path",
}


def path_error(e: OSError) -> TransferkitError:
    """The user-facing error for an operating-system error on a path: names the path and what to do.

    The CLI's wrapper applies it to every :class:`OSError` that carries a file name: such an error comes from the
    machine (permissions, a full disk, a missing file), so it is the user's to fix, never "a bug in transferkit".
    """
    reason, hint = e.strerror or type(e).__name__, io_hint(e)
    if e.filename is None:  # a write into an open file: the disk filled up
        return OutputError(f"Cannot write: {reason} ({hint}).")
    where = e.filename if e.filename2 is None else f"{e.filename} -> {e.filename2}"
    return OutputError(f"Cannot use {where}: {reason} ({hint}).")


def io_hint(e: OSError) -> str:
    """What the user can do about an OS error, from its errno."""
    return _IO_HINTS.get(e.errno, "check the path and its permissions")


def is_user_io(e: BaseException) -> bool:
    """An OS error the user's machine caused: it names a path, or the disk or quota is full."""
    return isinstance(e, OSError) and (e.filename is not None or e.errno in (errno.ENOSPC, errno.EDQUOT))


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
