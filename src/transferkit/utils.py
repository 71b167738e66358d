"""Small shared helpers: seeding, atomic writes, fingerprints, environment info."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    A reader never sees a half-written file: it sees the old file or the new one. The file gets the
    mode an ordinary ``open(path, "w")`` would give (``0o666 & ~umask``), not mkstemp's private 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Refuse an output path (a folder, or a file to write) that cannot be written, before any work is done, and
    without creating it.

    A file is created and removed in ``path`` (when it is a folder) or in its nearest existing parent: as root,
    ``os.access`` says yes to a read-only mount, so only a real write tells. Raises :class:`OutputError` naming
    ``what`` (the option, e.g. ``--out``) and the path.
    """
    from .errors import OutputError, io_hint

    p = Path(path).absolute()
    where = next(a for a in (p, *p.parents) if a.exists())
    if where == p and p.is_file():  # a file to overwrite: it is replaced through its folder
        where = p.parent
    if not where.is_dir():
        raise OutputError(f"{what} {path}: {where} is a file, not a folder; give another path.")
    try:
        with tempfile.TemporaryFile(dir=where, prefix=".transferkit-write-check-"):
            pass
    except OSError as e:
        raise OutputError(f"{what} {path} cannot be written: {where} refuses new files ({e.strerror or e}; "
                          f"{io_hint(e)}).") from None


def current_umask() -> int:
    """The process umask: from /proc/self/status on Linux, else by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class RunLock:
    """An exclusive lock on ``directory/.lock`` (``fcntl.flock``) held for one run writing there.

    A second run into the same directory gets a TransferkitError naming the first run's pid instead of
    both overwriting each other's checkpoints and results. The kernel drops the lock when the process
    ends, however it ends, so a crashed run never leaves a stale lock. A run that stops before writing
    anything (a bad setting found after the lock was taken) leaves no folder behind that it created.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / ".lock"
        self._fh = None
        self._created: list[Path] = []

    def __enter__(self):
        import fcntl

        from .errors import TransferkitError

        self._created = [d for d in (self.directory, *self.directory.parents) if not d.exists()]
        self.directory.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise TransferkitError(
                f"Another transferkit run (pid {holder}) is writing to {self.directory} (lock file {self.path}). "
                f"Wait for it to finish, or give this run another --out.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc):
        import fcntl

        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.truncate(0)
                if self._created and [p.name for p in self.directory.iterdir()] == [".lock"]:
                    self.path.unlink()  # nothing was written: leave no folder holding only a lock
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
            for d in self._created:  # deepest first; a folder something else was written into stays
                with contextlib.suppress(OSError):
                    d.rmdir()
        return False


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default, allow_nan=True))
    return Path(path)


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.detach().cpu().tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return repr(o)


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm progress bar, drawn only on a terminal or in a notebook.

    Off a terminal (``transferkit tour > log``, CI) a bar redrawn with ``\\r`` writes thousands of updates per
    epoch into the file, so there is none; the trainer's one summary line per epoch still prints (tqdm's own
    ``disable=None`` rule, except in Jupyter, whose output stream is not a terminal yet shows bars well).
    ``TRANSFERKIT_PROGRESS=always`` draws them anyway (a tool that follows a run through its bar).
    """
    from tqdm.auto import tqdm

    notebook = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)  # tqdm.auto chose the Jupyter widget
    forced = notebook or os.environ.get("TRANSFERKIT_PROGRESS") == "always"
    return tqdm(iterable, disable=True if not enabled else (False if forced else None), **kwargs)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(*parts) -> str:
    """A short stable hash of strings, bytes, arrays and tensors."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            p = p.detach().cpu().contiguous().numpy()
        if isinstance(p, np.ndarray):
            h.update(str((p.shape, p.dtype)).encode())
            h.update(np.ascontiguousarray(p).view(np.uint8).reshape(-1).data)
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(repr(p).encode())
        h.update(b"\x00")
    return h.hexdigest()[:20]


def state_fingerprint(module: torch.nn.Module) -> str:
    """Hash of a module's parameters and buffers (identifies the weights, not just the architecture)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        t = t.detach().cpu().contiguous().reshape(-1)
        if t.dtype == torch.bfloat16:
            t = t.float()
        h.update(t.numpy().view(np.uint8).data if t.numel() else b"")
    return h.hexdigest()[:20]


def environment() -> dict:
    """Versions and hardware, recorded in every result."""
    import sklearn
    import timm
    import torchvision

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "sklearn": sklearn.__version__,
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        from transferkit import __version__

        env["transferkit"] = __version__
    except ImportError:  # pragma: no cover
        pass
    return env


def cache_dir() -> Path:
    """Root of transferkit's on-disk caches (``$TRANSFERKIT_CACHE`` or ``~/.cache/transferkit``)."""
    root = os.environ.get("TRANSFERKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "transferkit"
    )
    return Path(root)


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
