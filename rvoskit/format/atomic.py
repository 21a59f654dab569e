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
#: Longest name :func:`safe_name` returns (characters, all ASCII).
MAX_NAME = 120


def safe_name(item_id: str) -> str:
    """Encode a dataset id (video id, expression id) as a file name that stays in its folder.

    Characters other than ``[A-Za-z0-9_-]`` and non-leading dots are percent-encoded
    (``%XX`` per UTF-8 byte), so ``"../x"`` becomes ``"%2E.%2Fx"`` and ordinary ids
    (``"0ab4afe7fb46"``, ``"bike-packing"``) are unchanged; a ``/`` is encoded too, so the ids of
    nested items (video, expression) joined as ``safe_name(v)/safe_name(e)`` never collide.

    The name is at most :data:`MAX_NAME` characters (file systems allow 255 bytes, and callers add
    extensions and ``.tmp-*`` temporaries): a longer encoding keeps its first characters and ends in
    ``~`` plus 20 hex digits of the id's SHA-256. ``~`` never appears otherwise (it is
    percent-encoded), so the encoding stays injective (up to a 80-bit hash collision) and never
    leaves its folder. It is not reversible by itself: every output that stores files under these
    names also records the ids (track store ``done/*.json``, ``viz.json``, ``frames`` paths in a
    dataset), which is how a name maps back to its id.

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
    name = "".join(out)
    if len(name) > MAX_NAME:
        import hashlib

        digest = hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]
        head = name[: MAX_NAME - 21]
        cut = head.rfind("%", len(head) - 2)
        if cut >= 0:  # do not split a %XX triple
            head = head[:cut]
        name = f"{head}~{digest}"
    return name


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
        RvosError: ``out`` exists and ``overwrite`` is false, or ``out`` exists and is not an rvoskit
            output (:func:`rvoskit.format.outputs.output_kind`): only rvoskit outputs are ever
            replaced.
        OSError: the file system refused a write (the temporary directory is removed first).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _usual_mode(tmp, directory=True)
        yield tmp
        if (out.exists() or out.is_symlink()) and not overwrite:  # another writer finished first
            raise RvosError("output appeared while this run was writing it (another process?); "
                            "pass --overwrite to replace it", file=out)
        _check_replaceable(out)
        old = None
        if out.exists() or out.is_symlink():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            _remove(old)
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            if old is not None:
                os.replace(old, out)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        _remove(old)


def _check_replaceable(out: Path) -> None:
    """Refuse to replace anything but an rvoskit output (or an empty folder)."""
    if not (out.exists() or out.is_symlink()):
        return
    from rvoskit.format.outputs import output_kind

    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    if output_kind(out) is None:
        raise RvosError("exists and is not an rvoskit output; it is never replaced (choose another output)", file=out)


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
    try:
        _usual_mode(tmp, directory=False)
        yield tmp
        # again: a writer that replaces the file instead of writing into it (safetensors'
        # save_file creates it anew, 0600) would otherwise leave its own mode
        _usual_mode(tmp, directory=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
