"""Atomic file-system writes shared by every writer (datasets, cohorts, ADaM/NONMEM, fits, tables).

Everything is first written beside its target, then moved into place with ``os.replace``, so an
interrupted write never leaves a half-written file or folder.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def swap_in(new: Path, target: Path) -> None:
    """Move ``new`` (file or folder) to ``target``, replacing what is there.

    The previous ``target`` is moved aside first and restored if the final move fails; it is
    removed only once the new one is in place.
    """
    if not target.exists():
        os.replace(new, target)
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


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p
