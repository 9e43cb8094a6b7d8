"""All-or-nothing outputs.

* :func:`atomic_path` (one file): the caller writes a temp file beside the target, which is renamed over
  the target at the end (``os.replace``), so a failure (exception, signal, full disk) never leaves a partial
  file and keeps the previous one.  The result gets the usual permissions (0666 minus the umask).
* :func:`staged_dir` (a folder such as ``export -o OUT``): everything is built in a temporary sibling
  folder, then swapped in whole with one atomic ``renameat2(RENAME_EXCHANGE)``; at every instant OUT is the
  complete old or the complete new folder.  A lock file next to OUT makes a concurrent run on the same OUT
  fail at once; leftovers of a killed run are removed by the next run.

Targets are checked before any work: a symlink, a device node, a FIFO or a socket at the target is refused
(``-o /dev/null`` must not replace /dev/null), as is one of the command's own input files
(:func:`protect_inputs`) and a name longer than NAME_MAX.  ``-o -`` and ``-o /dev/stdout`` write to
standard output.  A full disk is one line (:class:`BadInputError`) with the temp file removed.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from .errors import BadInputError, NeurodeployError, first_line
from .limits import NAME_MAX

STDOUT_NAMES = ("-", "/dev/stdout", "/proc/self/fd/1", "/dev/fd/1")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

#: (st_dev, st_ino) -> path of the input files of the running command (see protect_inputs)
_INPUTS: dict[tuple[int, int], str] = {}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_stdout(path) -> bool:
    return str(path) in STDOUT_NAMES


@contextlib.contextmanager
def protect_inputs(paths):
    """While active, no output may be written over one of ``paths`` (the command's input files)."""
    added = []
    for p in paths or ():
        with contextlib.suppress(OSError, ValueError, TypeError):
            st = os.stat(p)
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in _INPUTS:
                _INPUTS[(st.st_dev, st.st_ino)] = str(p)
                added.append((st.st_dev, st.st_ino))
    try:
        yield
    finally:
        for key in added:
            _INPUTS.pop(key, None)


def _check_name(path: Path) -> None:
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise BadInputError(f"{str(path)[:80]}...: a file name is longer than {NAME_MAX} bytes")


def check_output_path(path, protect=(), kind: str = "file") -> None:
    """Refuse a target that ``atomic_path``/``staged_dir`` must not replace (before any work is done)."""
    if is_stdout(path):
        if kind != "file":
            raise BadInputError(f"{path}: a folder output cannot go to standard output")
        return
    path = Path(path)
    _check_name(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BadInputError(f"{path}: cannot write ({exc.strerror or first_line(exc)})") from None
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        raise BadInputError(f"{path}: is a symbolic link; refusing to replace it (give the real path)")
    special = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a FIFO",
               stat.S_ISSOCK: "a socket"}
    for test, what in special.items():
        if test(mode):
            raise BadInputError(f"{path}: is {what}; refusing to replace it (use -o - for standard output)")
    if kind == "file" and stat.S_ISDIR(mode):
        raise BadInputError(f"{path}: is a directory")
    if kind == "dir" and not stat.S_ISDIR(mode):
        raise BadInputError(f"{path}: exists and is not a folder")
    protected = dict(_INPUTS)
    for p in protect or ():
        with contextlib.suppress(OSError):
            s = os.stat(p)
            protected[(s.st_dev, s.st_ino)] = str(p)
    if kind == "file" and (st.st_dev, st.st_ino) in protected:
        raise BadInputError(f"{path}: is an input of this command; refusing to write over it")
    if kind == "dir":
        root = os.path.realpath(path)
        for src in protected.values():
            if os.path.realpath(src).startswith(root + os.sep):
                raise BadInputError(f"{path}: holds the input {src}; refusing to replace that folder")


def disk_full(exc: BaseException | None) -> OSError | None:
    """The disk-full OSError behind ``exc`` (its cause/context chain; also HDF5's 'errno = 28' text)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and (exc.errno in _DISK_FULL or "No space left" in str(exc)
                                         or "errno = 28" in str(exc)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _write_error(path, exc: BaseException) -> BadInputError | None:
    """The one-line error for a failed write (None: not a write failure, re-raise as it is)."""
    if isinstance(exc, NeurodeployError):
        return None
    full = disk_full(exc)
    if full is not None:
        return BadInputError(f"{path}: no space left on device (nothing written, previous output kept)")
    if isinstance(exc, OSError):
        return BadInputError(f"{path}: cannot write ({exc.strerror or first_line(exc)})")
    return None


def _make_parents(parent: Path) -> list[Path]:
    """Create the missing folders above a target; returns those created (deepest last)."""
    missing = []
    p = parent
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            _remove_dirs(created)
            raise BadInputError(f"{d}: cannot create folder ({exc.strerror or first_line(exc)})") from None
        created.append(d)
    return created


def _remove_dirs(created: list[Path]) -> None:
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()  # only when still empty


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, protect=()):
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``, on error removed
    (and folders created for it removed again).  ``path`` ``-`` or ``/dev/stdout``: the finished file is
    copied to standard output.  ``protect``: more input files that must not be overwritten."""
    if is_stdout(path):
        fd, tmp = tempfile.mkstemp(prefix=".neurodeploy-stdout.", suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            sys.stdout.flush()
            with open(tmp, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return
    path = Path(path)
    check_output_path(path, protect)
    created = _make_parents(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # an unwritable place is bad input (exit 2), not a crash
        _remove_dirs(created)
        raise (_write_error(path, exc) or BadInputError(f"{path}: cannot write")) from None
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        check_output_path(path, protect)  # the target may have changed while we worked
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove_dirs(created)
        err = _write_error(path, exc)
        if err is not None:
            raise err from None
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
        return Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# -- folder outputs ---------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE; the standard library has no binding).
    False where the kernel or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _lock(lock_path: Path, out: Path) -> int:
    """An exclusive flock on ``lock_path`` (fails at once when held); the file is removed on release, so
    the inode is checked after locking (a file unlinked by the previous holder is retried)."""
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BadInputError(f"{out}: cannot write (cannot create the lock file {lock_path}: "
                                f"{exc.strerror or first_line(exc)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BadInputError(f"{out}: another neurodeploy run is writing this folder (lock {lock_path.name}); "
                                f"try again when it has finished") from None
        st = os.fstat(fd)
        try:
            now = os.stat(lock_path)
        except FileNotFoundError:
            os.close(fd)
            continue
        if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
            return fd
        os.close(fd)


def _unlock(fd: int, lock_path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(lock_path)
    os.close(fd)


def _leftovers(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{glob_escape(out.name)}.staging-*")) + \
        sorted(out.parent.glob(f".{glob_escape(out.name)}.old-*"))


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def _recover(out: Path) -> None:
    """Clean up after a killed run (we hold the lock): restore OUT from a half-done two-rename swap, then
    remove every staging/old folder."""
    olds = sorted(out.parent.glob(f".{glob_escape(out.name)}.old-*"))
    if olds and not os.path.lexists(out):
        os.rename(olds[-1], out)
    for p in _leftovers(out):
        shutil.rmtree(p, ignore_errors=True)


def _carry_over(old: Path, new: Path, owned) -> None:
    """Hard-link the entries of ``old`` that the run does not own (user files in OUT) into ``new``."""
    for entry in os.scandir(old):
        if entry.name in owned or os.path.lexists(new / entry.name):
            continue
        src, dst = Path(entry.path), new / entry.name
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
        elif entry.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            os.link(src, dst)


@contextlib.contextmanager
def staged_dir(out_dir: str | os.PathLike, owned=None, protect=()):
    """Build a folder output all-or-nothing: yields an empty temporary sibling folder; on success it
    replaces ``out_dir`` whole (an existing ``out_dir``'s entries not named in ``owned`` are carried over by
    hard link; ``owned=None``: nothing is carried over).  On any failure the temporary folder is removed
    and ``out_dir`` is untouched.  A concurrent run on the same ``out_dir`` fails at once."""
    out = Path(os.path.abspath(out_dir))
    check_output_path(out, protect, kind="dir")
    created = _make_parents(out.parent)
    lock_path = out.parent / f".{out.name[:200]}.lock"
    try:
        fd = _lock(lock_path, Path(out_dir))
    except BaseException:
        _remove_dirs(created)
        raise
    stage = None
    try:
        _recover(out)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name[:200]}.staging-", dir=out.parent))
        os.chmod(stage, 0o777 & ~_umask())
        yield stage
        check_output_path(out, protect, kind="dir")
        if out.exists():
            if owned is not None:
                _carry_over(out, stage, set(owned))
            if _exchange(stage, out):
                shutil.rmtree(stage)  # now the old folder
            else:  # two renames; a kill between them is repaired by _recover on the next run
                old = out.parent / f".{out.name[:200]}.old-{os.getpid()}"
                os.rename(out, old)
                os.rename(stage, out)
                shutil.rmtree(old)
        else:
            os.rename(stage, out)
        stage = None
    except BaseException as exc:
        err = _write_error(out_dir, exc)
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
            if err is None and type(exc) is BadInputError and str(stage) in str(exc):  # name OUT, not the stage
                err = BadInputError(str(exc).replace(str(stage), str(out_dir)))
        _unlock(fd, lock_path)
        fd = None
        _remove_dirs(created)
        if err is not None:
            raise err from None
        raise
    finally:
        if fd is not None:
            _unlock(fd, lock_path)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike):
    """Yield an ``h5py.File`` open for writing whose bytes land at ``path`` all-or-nothing.  The HDF5 file
    is built in memory (the compressed file's size) and then written with plain writes: the HDF5 library
    crashes (segfault, exit 139) when the disk fills under it, a plain write fails with one clean line."""
    import io

    import h5py

    check_output_path(path)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        yield f
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fo:
            fo.write(buf.getbuffer())
