"""Say what a file that ``torch.load`` cannot read actually is (for one-line errors)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def torch_file_problem(path: str | Path, exc: BaseException | None = None) -> str:
    """Describe why ``path`` is not a readable torch checkpoint, in words (no torch advice).

    Looks at the file itself: missing, a folder, empty, a safetensors file, not a zip archive (torch
    checkpoints are zips since torch 1.6), a truncated zip, or a zip whose pickle holds Python objects
    that ``weights_only=True`` refuses; otherwise ``damaged``. ``exc`` is the exception torch raised,
    used only to tell the last two apart.
    """
    p = Path(path)
    try:
        if not p.exists():
            return "file not found"
        if p.is_dir():
            return "a folder, not a checkpoint file"
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    if size == 0:
        return "an empty file"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return "a safetensors file, not a torch checkpoint (.pt)"
    if head[:4] != b"PK\x03\x04":
        kind = "a text file" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "not a zip archive"
        return f"not a torch checkpoint ({kind}; torch checkpoints are zip archives)"
    if not zipfile.is_zipfile(p):
        return f"a truncated or damaged torch checkpoint ({size:,} bytes, the zip archive is incomplete)"
    text = str(exc or "")
    if "weights_only" in text or "Unpickl" in text or "GLOBAL" in text:
        return "holds Python objects other than tensors and plain values (not a plain weights file)"
    return "a damaged torch checkpoint (torch cannot read it)"
