"""Atomic file output: write to a temp file beside the target, then ``os.replace`` it into place, so a
failure never leaves a partial file.  The result gets the usual permissions (0666 minus the umask)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import BadInputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``, on error removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # an unwritable place is bad input (exit 2), not a crash
        raise BadInputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise BadInputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike):
    """Yield a temporary sibling folder of ``path``; on success it replaces ``path`` as a whole (the old
    folder is renamed away, the new one renamed in, the old one removed), on error it is removed and
    ``path`` is left as it was."""
    import shutil

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInputError(f"{path}: exists and is not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise BadInputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = None
        try:
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
                os.rmdir(old)
                os.replace(path, old)
            os.replace(tmp, path)
        except OSError as exc:
            if old is not None and old.exists() and not path.exists():
                os.replace(old, path)
            raise BadInputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
