"""Preparing a command's output: the one function every writing command calls up front.

:func:`claim_output` runs before any work and

1. refuses an ``--out`` that equals, contains or lies inside one of the command's inputs (paths
   resolved, symlinks followed; a dataset's frame folder counts as an input too);
2. refuses an existing ``--out`` that is not an rvoskit output of the same kind (so ``--overwrite``
   never removes anything else), recognised by its manifest (:func:`output_kind`);
3. takes an advisory lock per output (``filelock``; a second writer gets ``another rvoskit process
   is writing OUT (pid N)``; the lock is an OS lock, so one left by a killed process blocks nothing);
4. removes the stale temporaries of a killed earlier run (``.<out>.tmp-*`` and ``.<out>.old-*``
   beside the output, ``.*.tmp-*`` inside it), which is safe because it holds the lock.

The lock is released when the command ends (the click context closes) or, outside the CLI, when
:meth:`OutputClaim.release` is called (the claim is also a context manager).
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Iterable

from rvoskit.errors import RvosError
from rvoskit.format.atomic import _remove

#: Output kinds and what they are called in messages.
KINDS = {
    "dataset": "dataset",
    "tracks": "track store",
    "labels": "labels directory",
    "predictions": "predictions directory",
    "eval": "eval output",
    "viz": "viz folder",
    "run": "training run folder",
    "demo": "demo folder",
    "export-mevis": "MeViS export",
    "json-export": "JSON export",
    "submission": "submission zip",
    "moments-export": "moments export",
    "report": "report",
}

#: Marker written at the root of a MeViS-layout export (the layout itself has no manifest).
EXPORT_MARKER = "rvoskit-export.json"
#: Comment written into submission zips.
ZIP_COMMENT = b"rvoskit submission"
#: Text every rvoskit HTML/Markdown report holds near its top (its intro line names the version).
REPORT_MARKER = "rvoskit "

_current: list["OutputClaim"] = []
_last: list[Path] = []


def last_output() -> Path | None:
    """The output most recently claimed in this process (kept after release, for error messages)."""
    return _last[-1] if _last else None


def forget_last_output() -> None:
    """Forget :func:`last_output` (the CLI calls this before each command)."""
    _last.clear()


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def output_kind(path: str | Path) -> str | None:
    """The kind of rvoskit output at ``path`` (a key of :data:`KINDS`), or ``None``.

    Recognised by manifests: ``dataset.json`` (dataset), ``trackstore.json`` (track store),
    ``labels.json`` (labels), ``predictions.json`` (predictions), ``summary.json`` with a
    ``protocol`` or beside ``eval.json`` (eval), ``viz.json`` (viz), ``config.yaml`` with ``checkpoints/`` or
    ``metrics.json`` (training run), ``demo.json`` or ``dataset/dataset.json`` (demo, also an interrupted one), :data:`EXPORT_MARKER` (MeViS export);
    files: a ``.json`` whose ``info.description`` starts with ``rvoskit`` (YouTube-VIS or COCO JSON export), a zip
    whose comment is :data:`ZIP_COMMENT` (submission), a file with ``<name>.qids.json`` beside it
    (moments export), an ``.html``/``.md`` holding
    :data:`REPORT_MARKER` (report). Never raises.
    """
    p = Path(path)
    try:
        if p.is_dir():
            if (p / "dataset.json").is_file():
                return "dataset"
            if (p / "trackstore.json").is_file():
                return "tracks"
            if (p / "labels.json").is_file():
                return "labels"
            if (p / "predictions.json").is_file():
                return "predictions"
            if (p / "viz.json").is_file():
                return "viz"
            if (p / "demo.json").is_file() or (p / "dataset" / "dataset.json").is_file():
                return "demo"
            if (p / EXPORT_MARKER).is_file():
                return "export-mevis"
            if (p / "config.yaml").is_file() and ((p / "checkpoints").is_dir() or (p / "metrics.json").is_file()
                                                  or _is_run_config(p / "config.yaml")):
                return "run"
            s = _json(p / "summary.json") if (p / "summary.json").is_file() else None
            if isinstance(s, dict) and ("protocol" in s or (p / "eval.json").is_file()):
                return "eval"
            return None
        if not p.is_file():
            return None
        if p.with_name(p.name + ".qids.json").is_file():  # rvoskit moments export writes this beside its file
            return "moments-export"
        suffix = p.suffix.lower()
        if suffix == ".zip":
            if zipfile.is_zipfile(p):
                with zipfile.ZipFile(p) as zf:
                    return "submission" if zf.comment.startswith(ZIP_COMMENT) else None
            return None
        if suffix == ".json":
            d = _json(p)
            info = d.get("info") if isinstance(d, dict) else None
            desc = info.get("description") if isinstance(info, dict) else None
            return "json-export" if isinstance(desc, str) and desc.startswith("rvoskit") else None
        if suffix in (".html", ".htm", ".md"):
            with open(p, encoding="utf-8", errors="replace") as f:
                return "report" if REPORT_MARKER in f.read(4096) else None
    except OSError:
        return None
    return None


def _is_run_config(path: Path) -> bool:
    """A training ``config.yaml`` has the top-level sections ``model:``, ``train:`` and ``data:``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            heads = {line.split(":", 1)[0] for line in f.read(65536).splitlines() if line[:1].isalpha()}
    except OSError:
        return False
    return {"model", "train", "data"} <= heads


def _is_empty_dir(p: Path) -> bool:
    try:
        return p.is_dir() and not any(p.iterdir())
    except OSError:
        return False


def _resolve(p: str | Path) -> Path:
    return Path(os.path.abspath(Path(p).expanduser())).resolve()


def _expand_inputs(inputs: Iterable[str | Path | None]) -> list[Path]:
    """Resolved input paths, plus each common-format dataset's frame folder and the dataset a
    predictions folder names."""
    out: list[Path] = []
    for i in inputs:
        if i is None or str(i) == "":
            continue
        p = _resolve(i)
        out.append(p)
        m = _json(p / "dataset.json") if p.is_dir() else None
        root = m.get("frame_root") if isinstance(m, dict) else None
        if isinstance(root, str) and root:
            out.append(_resolve(p / root))
        pm = _json(p / "predictions.json") if p.is_dir() else None
        ds = pm.get("dataset") if isinstance(pm, dict) else None
        if isinstance(ds, str) and ds:  # the dataset a predictions folder names (read when none is given)
            out.extend(_expand_inputs([p / ds]))
    return out


def track_paths(specs: Iterable[str] | None) -> list[str]:
    """The directories of ``--tracks`` values (``NAME=DIR`` or ``DIR``), for :func:`claim_output`."""
    out = []
    for spec in specs or ():
        spec = str(spec)
        if "=" in spec and not Path(spec).exists():
            spec = spec.split("=", 1)[1]
        out.append(spec)
    return out


def check_overlap(out: str | Path, inputs: Iterable[str | Path | None], *, allow_inside: bool = False) -> None:
    """Refuse an output that equals, contains or lies inside an input (resolved, symlinks followed).

    Args:
        out: the output path (``--out``).
        inputs: every path the command reads; ``None`` entries are skipped. A dataset directory also
            protects its frame folder.
        allow_inside: accept an output inside an input (a single report file among the folders it
            gathers).

    Raises:
        RvosError: ``"--out is the input INP"``, ``"--out lies inside the input INP"`` or ``"--out
            contains the input INP"``, naming ``out``.
    """
    o = _resolve(out)
    for i in _expand_inputs(inputs):
        if o == i:
            why = f"is the input {i}"
        elif o.is_relative_to(i) and not allow_inside:
            why = f"lies inside the input {i}"
        elif i.is_relative_to(o):
            why = f"contains the input {i}"
        else:
            continue
        raise RvosError(f"--out {why}; choose another output", file=out)


def _lock_path(out: Path, shard: str | None) -> Path:
    tag = "".join(c if c.isalnum() else "-" for c in f".shard-{shard}") if shard else ""
    return out.parent / f".{out.name}{tag}.lock"


#: Files that record options or progress, not completed work (see :meth:`OutputClaim.discard_unstarted`).
_BOOKKEEPING = {".json", ".jsonl", ".yaml", ".yml", ".lock", ".txt", ".csv", ".md", ".html"}


def _holds_work(p: Path) -> bool:
    """Whether ``p`` holds completed work: a file output (written atomically, so complete), or a
    folder with a non-empty data file (Parquet, safetensors, PNG, JPEG, checkpoint, ...)."""
    if not p.is_dir() or p.is_symlink():
        return True
    for root, _dirs, files in os.walk(p):
        for name in files:
            f = Path(root) / name
            if ".tmp-" in name or f.suffix.lower() in _BOOKKEEPING:
                continue
            try:
                if f.stat().st_size > 0:
                    return True
            except OSError:
                continue
    return False


class OutputClaim:
    """A claimed output: the advisory lock on it (see :func:`claim_output`)."""

    def __init__(self, out: Path, kind: str, lock, lock_path: Path, preexisting: bool = True, siblings: frozenset = frozenset()):
        self.out, self.kind, self._lock, self.lock_path = out, kind, lock, lock_path
        self.preexisting, self._siblings = preexisting, siblings

    def discard_unstarted(self) -> list[Path]:
        """Remove what this run created for the output (the output folder, its ``.<name>.*`` work
        folders) when it holds no completed work; what existed before the run is never touched.

        Called when a command fails (a file-system error or bad input), so a failed run that
        completed nothing leaves nothing behind; a resumable run that completed some work keeps it
        (rerun the same command to resume). Returns what was removed.
        """
        out = self.out
        new = [] if self.preexisting else [out]
        if out.parent.is_dir():
            new += [p for p in out.parent.glob(f".{out.name}.*") if p not in self._siblings and p != self.lock_path]
        removed = []
        for p in new:
            if (p.exists() or p.is_symlink()) and (".tmp-" in p.name or ".old-" in p.name or not _holds_work(p)):
                try:
                    _remove(p)
                    removed.append(p)
                except OSError:
                    pass
        return removed

    def release(self, discard: bool | None = None) -> None:
        """Release the lock and remove its file (idempotent).

        Args:
            discard: also :meth:`discard_unstarted`; default: when an ``OSError`` or
                :class:`RvosError` is propagating (the command failed).
        """
        if self._lock is None:
            return
        if discard is None:
            exc = sys.exc_info()[1]
            discard = isinstance(exc, (OSError, RvosError))
        if discard:
            try:
                self.discard_unstarted()
            except Exception:  # noqa: BLE001 - cleaning must never mask the command's own error
                pass
        try:
            self.lock_path.unlink(missing_ok=True)
        except OSError:
            pass
        try:
            self._lock.release(force=True)
        except Exception:  # noqa: BLE001 - releasing must never mask the command's own error
            pass
        self._lock = None
        if self in _current:
            _current.remove(self)

    def __enter__(self) -> "OutputClaim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def current_outputs() -> list[Path]:
    """Outputs claimed (and not released) by this process, newest last; used by the CLI's messages."""
    return [c.out for c in _current]


def _acquire(out: Path, shard: str | None):
    from filelock import FileLock, Timeout

    lp = _lock_path(out, shard)
    for _ in range(5):
        try:
            holder = lp.read_text(encoding="utf-8").strip()
        except OSError:
            holder = ""
        lock = FileLock(str(lp), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            try:
                holder = lp.read_text(encoding="utf-8").strip() or holder
            except OSError:
                pass
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise RvosError(f"another rvoskit process is writing {out}{pid}; wait for it to finish") from None
        fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
        try:
            same = fd is None or os.fstat(fd).st_ino == os.stat(lp).st_ino
        except OSError:
            same = False
        if not same:  # the file was removed by a releasing holder after we opened it: retry
            lock.release(force=True)
            continue
        try:
            if fd is not None:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            else:
                lp.write_text(str(os.getpid()), encoding="utf-8")
        except OSError:
            pass
        return lock, lp
    raise RvosError(f"could not lock {out}: the lock file keeps changing")


def clean_stale_temporaries(out: str | Path, *, inside: bool = True) -> list[Path]:
    """Remove temporaries left by a killed run of this output; call only while holding its lock.

    Removes ``.<name>.tmp-*`` and ``.<name>.old-*`` beside ``out`` and, with ``inside``, every
    ``.*.tmp-*`` file or folder under ``out`` and under its work folders beside it
    (``.<name>.partial``): per-file temporaries of resumable outputs such as a track store's
    ``.<video>.parquet.tmp-*``. Returns what was removed.
    """
    out = Path(out)
    removed: list[Path] = []
    if out.parent.is_dir():
        for pat in (f".{out.name}.tmp-*", f".{out.name}.old-*"):
            for p in out.parent.glob(pat):
                _remove(p)
                removed.append(p)
    tops = [out] if inside and out.is_dir() and not out.is_symlink() else []
    if inside and out.parent.is_dir():  # a resumable run's work folder beside the output (.<name>.partial)
        tops += [p for p in out.parent.glob(f".{out.name}.*") if p.is_dir() and not p.is_symlink()]
    for top in tops:
        for root, dirs, files in os.walk(top):
            for name in list(dirs) + files:
                if name.startswith(".") and ".tmp-" in name:
                    p = Path(root) / name
                    _remove(p)
                    removed.append(p)
                    if name in dirs:
                        dirs.remove(name)
    return removed


def claim_output(
    out: str | Path,
    *,
    kind: str,
    inputs: Iterable[str | Path | None] = (),
    overwrite: bool = False,
    allow_inside: bool = False,
    shard: str | None = None,
) -> OutputClaim:
    """Check and lock a command's output before any work (every writing command calls this first).

    Args:
        out: the ``--out`` path (directory or file).
        kind: what the command writes, a key of :data:`KINDS`.
        inputs: every path the command reads (datasets, track stores, labels, predictions, checkpoints).
        overwrite: the command was given ``--overwrite`` (only an rvoskit output of ``kind`` may be
            replaced; anything else is refused whether or not it is given).
        allow_inside: see :func:`check_overlap`.
        shard: several cooperating writers of one output (``tracks generate --shard K/N``): each
            shard takes its own lock and no temporaries inside ``out`` are cleaned.

    Returns:
        The :class:`OutputClaim`; inside a click command the lock is released when the command ends.

    Raises:
        RvosError: overlap with an input, an existing ``out`` of another kind, another live writer.
        OSError: the output's folder cannot be created (reported by the CLI as ``cannot write OUT``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    out = Path(out)
    _last.append(out)
    check_overlap(out, inputs, allow_inside=allow_inside)
    if out.is_symlink() and not out.exists():
        raise RvosError("output is a broken symbolic link", file=out)
    if out.exists() and not _is_empty_dir(out):
        found = output_kind(out)
        if found != kind:
            what = f"is an rvoskit {KINDS[found]}, not" if found else "is not"
            hint = f"--overwrite only replaces an rvoskit {KINDS[kind]}" if overwrite else "choose another output"
            raise RvosError(f"exists and {what} an rvoskit {KINDS[kind]}; {hint}", file=out)
    for anc in out.absolute().parents:
        if anc.exists() or anc.is_symlink():
            if not anc.is_dir():
                raise RvosError(f"cannot write {out}: {anc} is a file, not a folder")
            break
    out.parent.mkdir(parents=True, exist_ok=True)
    preexisting = out.exists() or out.is_symlink()
    siblings = frozenset(out.parent.glob(f".{out.name}.*"))
    lock, lp = _acquire(out, shard)
    claim = OutputClaim(out, kind, lock, lp, preexisting, siblings)
    _current.append(claim)
    try:
        clean_stale_temporaries(out, inside=shard is None)
    except OSError:
        pass
    ctx = None
    try:  # typer >= 0.2x runs commands on its vendored click (typer._click), whose context stack is its own
        from typer._click.globals import get_current_context as typer_context

        ctx = typer_context(silent=True)
    except ImportError:  # pragma: no cover
        pass
    if ctx is None:
        try:
            import click

            ctx = click.get_current_context(silent=True)
        except ImportError:  # pragma: no cover
            ctx = None
    if ctx is not None:
        ctx.call_on_close(claim.release)
    return claim
