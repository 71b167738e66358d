"""The Typer application every command module registers on, and the one error wrapper of the CLI.

Every command registered with ``@app.command()`` runs inside :func:`guarded`:

* a :class:`~transferkit.errors.TransferkitError` (a user error: a bad argument, file or data) is printed
  as one paragraph ``error: ...`` on stderr and the exit code is 2;
* an :class:`OSError` that names a file (a permission, a full disk, a read-only folder: the machine's, never
  the code's) becomes the same kind of user error, naming the path (:func:`~transferkit.errors.path_error`);
* a closed standard output (``transferkit strategies | head``) ends the command quietly, with exit code 141 as
  for SIGPIPE;
* any other exception is a bug in transferkit: one paragraph says so, with the path of a log file that
  holds the full traceback (under ``<cache>/logs``); the exit code is 1. No library traceback reaches
  the screen.
"""
from __future__ import annotations

import datetime
import functools
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import click
import typer

from ..errors import TransferkitError, is_user_io, one_paragraph, path_error

BUG_MESSAGE = "this is a bug in transferkit, please report it"


def fail(msg: str, code: int = 2):
    """Print ``error: msg`` (one paragraph) on stderr and exit with ``code``."""
    typer.secho(f"error: {one_paragraph(msg)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def write_crash_log(exc: BaseException) -> Path:
    """Write the traceback of ``exc`` to ``<cache>/logs/crash-*.log`` (or the temp dir) and return the path."""
    from ..utils import cache_dir

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for root in (cache_dir() / "logs", Path(tempfile.gettempdir()) / "transferkit-logs"):
        try:
            root.mkdir(parents=True, exist_ok=True)
            path = root / f"crash-{stamp}-{os.getpid()}.log"
            path.write_text(f"transferkit crash report\ncommand: {' '.join(map(str, sys.argv))}\n\n{text}")
            return path
        except OSError:
            continue
    return Path("(no writable log directory)")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A Python warning during a command: one line ``warning: ...`` on stderr, without the source line."""
    typer.secho(f"warning: {one_paragraph(str(message))}", fg=typer.colors.YELLOW, err=True)


def guarded(fn):
    """Wrap a command callback with the CLI's error policy (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning  # restored on exit by catch_warnings
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except TransferkitError as e:
            fail(str(e))
        except BrokenPipeError:  # the reader of our output stopped reading (`transferkit strategies | head`)
            _stdout_closed()
        except Exception as e:
            if is_user_io(e):  # a permission, a full disk, a missing path: the machine's, the user's to fix
                fail(str(path_error(e)))
            _bug(e)  # anything else, outside user I/O, is ours to fix: log it, never dump it

    return wrapper


def _stdout_closed():
    """Leave quietly, as a command killed by SIGPIPE does (exit code 141): what was asked for was read. Standard
    output goes to the null device first, so the interpreter's final flush does not fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor behind sys.stdout (a test runner's capture)
        pass
    raise typer.Exit(141)


def _bug(e: BaseException):
    """The one place that says "this is a bug": an exception that is neither a user error nor user I/O."""
    path = write_crash_log(e)
    what = one_paragraph(str(e))
    what = what if len(what) <= 300 else what[:300] + "..."
    fail(f"{BUG_MESSAGE} ({type(e).__name__}: {what}). The full traceback is in {path}.", code=1)


class _GuardedTyper(typer.Typer):
    """A Typer whose commands all run inside :func:`guarded`."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(fn):
            register(guarded(fn))
            return fn

        return decorator


app = _GuardedTyper(
    name="transferkit",
    help="Transfer learning for images: fine-tune, extract features, adapt domains, learn from few or no "
         "examples, share across tasks, distil - and choose between them with evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
