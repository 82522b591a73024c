"""Atomic file-system writes shared by every writer (datasets, cohorts, ADaM/NONMEM, fits, tables).

Everything is first written beside its target, then moved into place with ``os.replace``, so an
interrupted write never leaves a half-written file or folder.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one system call (Linux ``renameat2``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False  # file system or kernel without RENAME_EXCHANGE
    raise OSError(err, os.strerror(err), str(b))


def swap_in(new: Path, target: Path) -> None:
    """Move ``new`` (file or folder) to ``target``, replacing what is there.

    Where the system can (Linux), the two are exchanged in one atomic call and the old one is then
    removed, so that ``target`` always names a complete old or new version. Elsewhere the previous
    ``target`` is moved aside first and restored if the final move fails; it is removed only once
    the new one is in place (a process killed between the two moves leaves it beside the target as
    ``.NAME.old-*``, which :func:`bayes_blina.store.load_fit` points to).
    """
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        if new.is_dir():
            shutil.rmtree(new, ignore_errors=True)
        else:
            new.unlink(missing_ok=True)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        os.replace(old, target)
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def make_parent(p: Path) -> None:
    """Create ``p``'s parent folder, or raise :class:`OutputError` saying why it cannot be."""
    from bayes_blina.errors import OutputError

    for anc in reversed(p.parents):
        if anc.exists() and not anc.is_dir():
            raise OutputError(f"cannot write {p}: {anc} exists and is a file, not a folder")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder {p.parent} for {p}: {e.strerror or e}") from None


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it.

    Raises
    ------
    OutputError
        If ``path`` is an existing folder, a parent is a file, or the file system refuses the write;
        nothing is left behind.
    """
    from bayes_blina.errors import OutputError

    p = Path(path)
    if p.is_dir():
        raise OutputError(f"cannot write {p}: it is an existing folder (expected a file name)")
    make_parent(p)
    tmp = p.with_name(f".{p.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    except OSError as e:
        raise OutputError(f"cannot write {p}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return p


#: Locks this process holds, by pid: a forked child inherits the set but not the locks.
_HELD: set[tuple[int, Path]] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def writer_lock(target: str | os.PathLike) -> Iterator[Path]:
    """Hold the one-writer lock of ``target`` (``.NAME.lock`` beside it) while the block runs.

    A second process asking for the same lock is refused at once with a
    :class:`~bayes_blina.errors.FitStoreError` naming the holder; a lock whose process on this
    host no longer runs (killed) is taken over. Re-entrant within a process.
    """
    from bayes_blina.errors import FitStoreError

    target = Path(target).absolute()
    key = (os.getpid(), target)
    if key in _HELD:
        yield target
        return
    lock = target.with_name(f".{target.name}.lock")
    me = f"{os.getpid()} {socket.gethostname()}"
    for attempt in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid_text, _, host = lock.read_text(encoding="utf-8").partition(" ")
                pid = int(pid_text)
            except (OSError, ValueError):
                pid, host = -1, ""
            if attempt == 0 and host == socket.gethostname() and pid > 0 and not _alive(pid):
                lock.unlink(missing_ok=True)  # left by a killed writer
                continue
            raise FitStoreError(
                f"another process ({'pid ' + str(pid) + ' on ' + host if pid > 0 else 'unknown'}) is writing "
                f"to {target} now (lock file {lock}); wait for it to finish or choose another --out. "
                "If no such process runs, delete the lock file.") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(me)
        break
    _HELD.add(key)
    try:
        yield target
    finally:
        _HELD.discard(key)
        with contextlib.suppress(OSError):
            if lock.read_text(encoding="utf-8") == me:
                lock.unlink()
