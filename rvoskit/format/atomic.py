"""Atomic outputs: write to a temporary sibling, rename into place when complete."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from rvoskit.errors import RvosError

_SAFE = re.compile(r"[A-Za-z0-9_\-]")


def safe_name(item_id: str) -> str:
    """Encode a dataset id (video id, expression id) as a file name that stays in its folder.

    Characters other than ``[A-Za-z0-9_-]`` and non-leading dots are percent-encoded
    (``%XX`` per UTF-8 byte), so ``"../x"`` becomes ``"%2E.%2Fx"`` and ordinary ids
    (``"0ab4afe7fb46"``, ``"bike-packing"``) are unchanged. The encoding is injective.

    Raises:
        RvosError: for an empty id.
    """
    if not item_id:
        raise RvosError("empty id cannot be used as a file name")
    out = []
    for i, ch in enumerate(item_id):
        if _SAFE.fullmatch(ch) or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, directory: bool) -> None:
    """mkdtemp/mkstemp create 0700/0600 entries; give outputs the usual umask-based modes."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_dir(out: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` only if the block completes.

    The temporary directory is a sibling of ``out`` (same file system, so the final rename is
    atomic). On any exception it is removed and ``out`` is left as it was.

    Args:
        out: the final directory.
        overwrite: replace an existing ``out``; without it an existing ``out`` is an error.

    Raises:
        RvosError: ``out`` exists and ``overwrite`` is false.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    _usual_mode(tmp, directory=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        _remove(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        _remove(old)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block completes.

    Used for per-video outputs of long, resumable jobs: a killed run never leaves a partial file
    under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    _usual_mode(tmp, directory=False)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
