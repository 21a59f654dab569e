"""One HTML or Markdown page gathering what the stages wrote: every PNG and every JSON summary.

The report knows no stage: it walks the given output directories and finds

- PNG files (the stages' plots: mIoU histograms, training curves, J&F histograms, viz sheets),
- GIF / MP4 clips (``rvoskit viz`` clips), linked, and
- JSON / JSON-lines files (manifests and summaries: ``labels.json``, eval summaries, training
  metrics, ``viz.json``), shown as tables of their scalar values.

A figure's caption comes from a JSON file in its folder or above it (within the run directory) that
names the PNG: a dict holding a string value that is the PNG's path (relative to that JSON's folder)
gives the dict's ``caption`` / ``title`` / ``description`` entry, or else the key naming the PNG
(``{"histogram_png": "miou_hist.png"}`` -> "histogram png"). A PNG that no JSON names is captioned by
its file name. Hidden files and folders (names starting with ``.``, such as the temporary folders of
unfinished atomic writes) are skipped.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format.atomic import atomic_file

#: JSON files larger than this are listed, not parsed.
MAX_JSON_BYTES = 4 << 20
#: A folder with more JSON files than this (e.g. a track store's per-video ``done/`` markers) is
#: summarised in one line instead of one table per file.
MAX_JSON_TABLES = 6
#: Rows of one JSON table at most.
MAX_TABLE_ROWS = 40
_CAPTION_KEYS = ("caption", "title", "description")


@dataclass
class ReportResult:
    """What :func:`build_report` wrote and found.

    Attributes:
        out: the report file.
        images: every PNG found, in report order (absolute paths).
        summaries: every JSON / JSON-lines file shown as a table.
        skipped: ``(file, reason)`` for files that could not be read (listed in the report too).
    """

    out: Path
    images: list[Path] = field(default_factory=list)
    summaries: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


@dataclass
class _Section:
    heading: str
    folder: Path
    pngs: list[Path] = field(default_factory=list)
    jsons: list[Path] = field(default_factory=list)
    clips: list[Path] = field(default_factory=list)


def _walk(root: Path, exclude: Path) -> Iterator[_Section]:
    """Folders under ``root`` (sorted, hidden ones skipped) with their PNG and JSON files."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(dirpath)
        sec = _Section("", folder)
        for name in sorted(filenames):
            p = folder / name
            if name.startswith(".") or p.resolve() == exclude:
                continue
            suffix = p.suffix.lower()
            if suffix == ".png":
                sec.pngs.append(p)
            elif suffix in (".json", ".jsonl"):
                sec.jsons.append(p)
            elif suffix in (".gif", ".mp4"):
                sec.clips.append(p)
        if sec.pngs or sec.jsons or sec.clips:
            yield sec


def _load(path: Path) -> tuple[Any, str | None]:
    """Parse a JSON or JSON-lines file; returns ``(value, None)`` or ``(None, reason)``.

    A JSON-lines file gives ``{"records": n, "last": <last record>}`` (training logs append one
    record per epoch or step; the last is the one worth a table).
    """
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        return None, f"{size} bytes, larger than {MAX_JSON_BYTES}: not parsed"
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
            return {"records": len(records), "last": records[-1] if records else None}, None
        return json.loads(text), None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"invalid JSON: {exc}"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _flatten(value: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """``(dotted key, formatted value)`` for the scalars of a JSON value, three levels deep; short
    lists of scalars inline, other lists and deeper objects as a count."""
    scalar = (str, int, float, bool, type(None))
    if isinstance(value, dict):
        if depth >= 3:
            yield prefix, f"{{{len(value)} keys}}"
            return
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
    elif isinstance(value, list):
        if len(value) <= 8 and all(isinstance(v, scalar) for v in value):
            yield prefix, "[" + ", ".join(_fmt(v) for v in value) + "]"
        else:
            yield prefix, f"[{len(value)} items]"
    else:
        yield prefix or "value", _fmt(value)


def _captions(doc: Any, json_dir: Path, pngs: set[Path]) -> dict[Path, str]:
    """Captions for the PNGs a JSON document names (see the module docstring)."""
    found: dict[Path, str] = {}

    def visit(node: Any, key: str, parent: dict | None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                visit(v, str(k), node)
        elif isinstance(node, list):
            for v in node:
                visit(v, key, parent)
        elif isinstance(node, str) and node.lower().endswith(".png"):
            target = (json_dir / node).resolve()
            if target in pngs and target not in found:
                own = next((parent[c] for c in _CAPTION_KEYS if parent and isinstance(parent.get(c), str)), None)
                found[target] = own or key.replace("_", " ").replace("-", " ").strip() or target.stem

    visit(doc, "", None)
    return found


def build_report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    title: str = "rvoskit report",
    embed: bool = False,
    notice: str | None = None,
    lead_tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]] = (),
    notes: Sequence[str] = (),
) -> ReportResult:
    """Gather every PNG and JSON summary under ``run_dirs`` into one HTML (``*.html``) or Markdown
    (``*.md``) page.

    Args:
        run_dirs: stage output directories (any stage: dataset, track store, labels, training run,
            predictions, eval, viz); each is walked recursively.
        out: the report file; images are referenced by paths relative to its folder.
        title: the page title.
        embed: HTML only: inline the PNGs as base64 ``data:`` URIs so that the page stands alone.
        notice: a warning shown first, highlighted (e.g. that SAM2 ran with random weights).
        lead_tables: tables shown at the top, before the gathered files: ``(caption, header, rows)``
            (e.g. the stages that ran and the headline numbers).
        notes: short paragraphs shown after the lead tables.

    Returns:
        :class:`ReportResult`.

    Raises:
        RvosError: a run directory that does not exist, an output suffix other than ``.html`` /
            ``.htm`` / ``.md``, ``embed`` with Markdown, or nothing found at all.
    """
    out = Path(out)
    kind = {".html": "html", ".htm": "html", ".md": "md"}.get(out.suffix.lower())
    if kind is None:
        raise RvosError("report must end in .html or .md", file=out)
    if embed and kind != "html":
        raise RvosError("--embed needs an HTML report", file=out)
    roots = [Path(d) for d in run_dirs]
    if not roots:
        raise RvosError("no run directories given")
    for r in roots:
        if not r.is_dir():
            raise RvosError("not a directory", file=r)
    result = ReportResult(out)
    sections: list[_Section] = []
    names: dict[str, int] = {}
    captions: dict[Path, str] = {}
    docs: dict[Path, Any] = {}
    for root in roots:
        base = root.resolve().name or str(root)
        names[base] = names.get(base, 0) + 1
        label = base if names[base] == 1 else f"{base} ({names[base]})"
        found = list(_walk(root, out.resolve()))
        pngs = {p.resolve() for s in found for p in s.pngs}
        for sec in found:
            rel = sec.folder.relative_to(root).as_posix()
            sec.heading = label if rel == "." else f"{label}/{rel}"
            sections.append(sec)
            for j in sec.jsons:
                doc, why = _load(j)
                if why:
                    result.skipped.append((j, why))
                    continue
                docs[j] = doc
                for png, cap in _captions(doc, j.parent.resolve(), pngs).items():
                    captions.setdefault(png, cap)
    if not sections:
        raise RvosError("no PNG or JSON files found", file=", ".join(str(r) for r in roots))
    for sec in sections:
        result.images.extend(sec.pngs)
        result.summaries.extend(j for j in sec.jsons if j in docs)

    def link(path: Path) -> str:
        return quote(Path(os.path.relpath(path.resolve(), out.resolve().parent)).as_posix())

    def src(png: Path) -> str:
        if embed:
            return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
        return link(png)

    def caption(png: Path) -> str:
        return captions.get(png.resolve()) or png.stem.replace("_", " ").replace("-", " ")

    def tables(sec: _Section) -> list[tuple[str, list[tuple[str, str]]]]:
        readable = [j for j in sec.jsons if j in docs]
        if len(readable) > MAX_JSON_TABLES:
            shown = ", ".join(j.name for j in readable[:3])
            return [(f"{len(readable)} JSON files", [("e.g.", shown + ", ...")])]
        out_tables = []
        for j in readable:
            rows = list(_flatten(docs[j]))
            if len(rows) > MAX_TABLE_ROWS:
                rows = rows[:MAX_TABLE_ROWS] + [("...", f"{len(rows) - MAX_TABLE_ROWS} more values")]
            out_tables.append((j.name, rows))
        return out_tables

    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    intro = f"{len(result.images)} images and {len(result.summaries)} summaries from {len(roots)} run director{'y' if len(roots) == 1 else 'ies'}; rvoskit {__version__}, {stamp}."
    lead = (notice, list(lead_tables), list(notes))
    if kind == "html":
        text = _html(title, intro, roots, sections, tables, src, caption, link, result.skipped, lead)
    else:
        text = _markdown(title, intro, roots, sections, tables, src, caption, link, result.skipped, lead)
    with atomic_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return result


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em;font-size:1.2em}
table{border-collapse:collapse;margin:.5em 1em 1em 0;font-size:.85em;display:inline-table;vertical-align:top}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}th{background:#f3f3f3}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.9em;color:#444}
code{font-size:.85em;color:#666}.skipped{color:#a00}
.notice{background:#fdecea;border:2px solid #c62828;color:#7f1d1d;padding:.6em 1em;font-weight:600}
table.lead{display:table;font-size:.95em}"""


def _html(title, intro, roots, sections, tables, src, caption, link, skipped, lead=(None, [], [])) -> str:
    e = html.escape
    notice, lead_tables, notes = lead
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    if notice:
        parts.append(f'<p class="notice" role="alert">{e(notice)}</p>')
    for cap, header, rows in lead_tables:
        parts.append(f'<table class="lead"><caption><b>{e(cap)}</b></caption><tr>' + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr>")
        parts.extend("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        parts.append("</table>")
    parts.extend(f"<p>{e(n)}</p>" for n in notes)
    parts += [
        f"<p>{e(intro)}</p>",
        "<p>Run directories: " + ", ".join(f"<code>{e(str(r))}</code>" for r in roots) + "</p>",
    ]
    for sec in sections:
        parts.append(f"<h2>{e(sec.heading)}</h2>")
        for name, rows in tables(sec):
            parts.append(f'<table><tr><th colspan="2">{e(name)}</th></tr>')
            parts.extend(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows)
            parts.append("</table>")
        for png in sec.pngs:
            s, c = src(png), caption(png)
            img = f'<img src="{e(s)}" alt="{e(c)}" loading="lazy">'
            anchor = img if s.startswith("data:") else f'<a href="{e(s)}">{img}</a>'
            parts.append(f"<figure>{anchor}<figcaption>{e(c)} <code>{e(png.name)}</code></figcaption></figure>")
        if sec.clips:
            parts.append("<p>Clips: " + ", ".join(f'<a href="{e(link(p))}">{e(p.name)}</a>' for p in sec.clips) + "</p>")
    if skipped:
        parts.append("<h2>Skipped files</h2><ul>")
        parts.extend(f'<li class="skipped"><code>{e(str(p))}</code>: {e(why)}</li>' for p, why in skipped)
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _markdown(title, intro, roots, sections, tables, src, caption, link, skipped, lead=(None, [], [])) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    notice, lead_tables, notes = lead
    parts = [f"# {title}", ""]
    if notice:
        parts += [f"> **{notice}**", ""]
    for cap, header, rows in lead_tables:
        parts += [f"**{cap}**", "", "| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
        parts += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows] + [""]
    for n in notes:
        parts += [n, ""]
    parts += [intro, "", "Run directories: " + ", ".join(f"`{r}`" for r in roots), ""]
    for sec in sections:
        parts += [f"## {sec.heading}", ""]
        for name, rows in tables(sec):
            parts += [f"| {cell(name)} | |", "|---|---|"] + [f"| {cell(k)} | {cell(v)} |" for k, v in rows] + [""]
        for png in sec.pngs:
            c = caption(png)
            parts += [f"![{cell(c)}]({src(png)})", "", f"*{c}* (`{png.name}`)", ""]
        if sec.clips:
            parts += ["Clips: " + ", ".join(f"[{p.name}]({link(p)})" for p in sec.clips), ""]
    if skipped:
        parts += ["## Skipped files", ""] + [f"- `{p}`: {why}" for p, why in skipped] + [""]
    return "\n".join(parts)
