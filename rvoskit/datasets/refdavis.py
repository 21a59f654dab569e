"""Ref-DAVIS17 converter (Khoreva et al., ACCV 2018) on DAVIS 2017.

Native inputs (``docs: dataset-formats.md`` §3; wjn922/ReferFormer
``tools/data/convert_davis_to_ytvos.py``; davisvideochallenge/davis2017-evaluation ``davis2017/davis.py``)::

    <root>/JPEGImages/480p/<seq>/00000.jpg
    <root>/Annotations/480p/<seq>/00000.png                (semi-supervised; default)
    <root>/Annotations_unsupervised/480p/<seq>/00000.png   (--davis-annotations unsupervised)
    <root>/ImageSets/2017/{train,val}.txt
    <root>/davis_semantics.json                            (optional categories)
    <text-dir>/Davis17_annot{1,2}.txt, Davis17_annot{1,2}_full_video.txt
"""

from __future__ import annotations

from pathlib import Path


from rvoskit.datasets.common import (
    first_few,
    frame_files,
    image_size,
    label_values,
    load_json,
    mask_rows,
    parallel_map,
    read_label_png,
    require,
)
from rvoskit.errors import RvosError
from rvoskit.executor import Executor, resolve_executor
from rvoskit.format import DatasetWriter
from rvoskit.progress import progress_bar
from rvoskit.format import rle as rlemod

#: (annotator, kind, file name, encoding); exp_id = 4k + position in this list (ReferFormer order).
TEXT_FILES = (
    (1, "first_frame", "Davis17_annot1.txt", "utf-8"),
    (1, "full_video", "Davis17_annot1_full_video.txt", "utf-8"),
    (2, "first_frame", "Davis17_annot2.txt", "latin-1"),
    (2, "full_video", "Davis17_annot2_full_video.txt", "latin-1"),
)
#: Video-name typos in the text files (ReferFormer convert_davis_to_ytvos.py).
NAME_FIXES = {"clasic-car": "classic-car", "dog-scale": "dogs-scale", "motor-bike": "motorbike"}
VOID = 255


def find_davis_root(root: str | Path) -> Path:
    """The DAVIS 2017 root: ``root`` itself, or ``root/DAVIS`` (ReferFormer's ``data/ref-davis`` layout,
    which holds ``DAVIS/`` beside ``davis_text_annotations/``).

    Raises:
        RvosError: ``root`` does not exist, or holds neither ``ImageSets/2017`` nor ``DAVIS/ImageSets/2017``.
    """
    root = Path(root)
    require(root.exists(), "root not found", file=root)
    require(root.is_dir(), "root is a file, expected the DAVIS 2017 folder", file=root)
    if not (root / "ImageSets").is_dir() and (root / "DAVIS" / "ImageSets").is_dir():
        return root / "DAVIS"
    if not (root / "ImageSets").is_dir():
        raise RvosError("not a DAVIS 2017 root: no ImageSets/2017 here or in DAVIS/ "
                        "(expected JPEGImages/480p, Annotations/480p, ImageSets/2017)", file=root)
    return root


def _all_sequences(root: Path) -> set[str]:
    """Every sequence a DAVIS root knows: the ImageSets/2017 lists and the JPEGImages/480p folders."""
    out: set[str] = set()
    for lst in (root / "ImageSets" / "2017").glob("*.txt"):
        try:
            out |= {s.strip() for s in lst.read_text(encoding="utf-8-sig").splitlines() if s.strip()}
        except (OSError, UnicodeDecodeError):
            continue
    jpeg = root / "JPEGImages" / "480p"
    if jpeg.is_dir():
        out |= {p.name for p in jpeg.iterdir() if p.is_dir()}
    return out


def read_text_file(path: Path, encoding: str) -> list[tuple[str, int, str, int]]:
    """Parse one Ref-DAVIS17 text file.

    Line format ``<video> <obj_id> "<expression>"`` (ReferFormer / RefVOS parse
    ``' '.join(line.split()[2:])[1:-1]``). The three known video-name typos are fixed.

    Returns:
        ``[(video, obj_id, text, line_number), ...]`` in file order.

    Raises:
        RvosError: missing file, bytes that are not valid in ``encoding`` (annotator 1 files must
            be UTF-8), or a malformed line (names the line number).
    """
    require(path.is_file(), "missing Ref-DAVIS17 text file", file=path)
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (an editor's): not part of the first video name
        raw = raw[3:]
    require(raw.strip() != b"", "empty Ref-DAVIS17 text file (no expression lines)", file=path)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RvosError(f"not valid {encoding} at byte {exc.start}", file=path, item=f"line {line}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        rest = " ".join(parts[2:])
        if len(parts) < 3 or not (rest.startswith('"') and rest.endswith('"') and len(rest) >= 2):
            raise RvosError('malformed line: expected <video> <obj_id> "<expression>"', file=path, item=f"line {n}")
        try:
            obj = int(parts[1])
        except ValueError:
            raise RvosError(f"obj_id {parts[1]!r} is not an integer", file=path, item=f"line {n}") from None
        out.append((NAME_FIXES.get(parts[0], parts[0]), obj, rest[1:-1], n))
    return out


def _seq_masks(job: tuple) -> tuple:
    """Worker: one sequence's frames, palette PNGs -> object mask rows and void rows."""
    seq, jpeg_dir, ann_dir = job
    jpeg_dir, ann_dir = Path(jpeg_dir), Path(ann_dir)
    require(jpeg_dir.is_dir(), "missing frame folder", file=jpeg_dir, item=seq)
    names = sorted(p.stem for p in jpeg_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    require(len(names) > 0, "no frames", file=jpeg_dir, item=seq)
    if all(n.isdigit() for n in names):  # DAVIS numbers its frames 00000, 00001, ...: a gap is a missing JPEG
        nums = [int(n) for n in names]
        gaps = sorted(set(range(nums[0], nums[-1] + 1)) - set(nums))
        require(not gaps, f"missing frame(s) {first_few([str(g).zfill(len(names[0])) for g in gaps])} (DAVIS frames are numbered without gaps)",
                file=jpeg_dir, item=seq)
    files = frame_files(jpeg_dir, names, video_id=seq)
    H, W = image_size(files[0])
    require(ann_dir.is_dir(), "missing annotation folder", file=ann_dir, item=seq)
    orphans = sorted(set(p.stem for p in ann_dir.iterdir() if p.suffix.lower() == ".png") - set(names))
    require(not orphans, f"annotation PNG(s) without a frame JPEG: {first_few([o + '.png' for o in orphans])}", file=ann_dir, item=seq)
    objs, ts, counts = [], [], []
    void_rows = []
    for t, name in enumerate(names):
        png = ann_dir / f"{name}.png"
        # DAVIS 2017 annotates every frame of train/val: a missing PNG is an error, not "objects absent"
        require(png.is_file(), f"missing annotation PNG for frame {name!r}", file=png, item=seq)
        label = read_label_png(png)
        require(label.shape == (H, W), f"mask size {label.shape[0]}x{label.shape[1]} differs from the frame {H}x{W}", file=png, item=seq)
        values = label_values(label)
        present = [i for i in values if 0 < i < VOID]
        for o, c in zip(present, rlemod.encode_labels(label, present)):
            objs.append(o)
            ts.append(t)
            counts.append(c)
        if VOID in values:
            void = label == VOID
            void_rows.append({"video_id": seq, "frame_idx": t, "height": H, "width": W, "rle": rlemod.encode(void), "area": int(void.sum())})
    return seq, names, [p.name for p in files], (H, W), mask_rows(seq, objs, ts, counts, H, W), void_rows


def convert_refdavis(
    root: str | Path,
    split: str,
    out: str | Path,
    *,
    text_dir: str | Path | None = None,
    annotations: str = "semi-supervised",
    workers: int = 1,
    executor: str | Executor | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Convert a DAVIS 2017 split with the Ref-DAVIS17 expressions to the common format.

    Every object of the text files gets four expressions (annotator 1/2 x first-frame/full-video),
    numbered ``exp_id = 4k + j`` as ReferFormer's ``convert_davis_to_ytvos.py`` does (k = rank of
    the object among the video's text objects in obj_id *string* order, as ReferFormer sorts them;
    j = 0 a1 first-frame, 1 a1 full-video, 2 a2 first-frame, 3 a2 full-video), each row keeping
    ``annotator`` and ``kind``. Where ReferFormer zips the four files positionally (and so drops or
    misaligns objects that one annotator did not describe), rvoskit matches texts by obj_id and
    leaves a gap in the numbering. Masks come from the
    semi-supervised ``Annotations/480p`` by default (the label set the text ids were written
    against) or ``Annotations_unsupervised/480p``. Void pixels (255) go to ``void.parquet``, never
    into an object.

    Args:
        root: the DAVIS root (``JPEGImages/480p``, ``Annotations*/480p``, ``ImageSets/2017``).
        split: ``train`` or ``val`` (``ImageSets/2017/<split>.txt``).
        out: output dataset directory (created atomically).
        text_dir: folder of the four text files (default ``<root>/davis_text_annotations`` or
            ``<root>/../davis_text_annotations``).
        annotations: ``semi-supervised`` or ``unsupervised``.
        workers: processes decoding PNGs.
        executor: ``local`` / ``process`` / ``ray`` (:mod:`rvoskit.executor`; default: ``local``
            for one worker, else ``process``).
        ray_address: the Ray cluster of ``executor="ray"``.
        overwrite: replace an existing ``out``.
        show_progress: show a rich progress bar.

    Returns:
        ``out``.

    Raises:
        RvosError: bad input (named file and item), including an expression whose obj_id no
            annotation PNG of its video contains; nothing is left at ``out``.
    """
    ex = resolve_executor(executor, workers, ray_address)
    require(annotations in ("semi-supervised", "unsupervised"), f"unknown annotation set {annotations!r}")
    root = find_davis_root(root)
    iset = root / "ImageSets" / "2017" / f"{split}.txt"
    if not iset.is_file():
        have = sorted(p.stem for p in iset.parent.glob("*.txt")) if iset.parent.is_dir() else []
        raise RvosError(f"no sequence list for split {split!r}; "
                        + (f"splits here: {', '.join(have)}" if have else "no ImageSets/2017/*.txt at all"), file=iset)
    seqs = [s.strip() for s in iset.read_text(encoding="utf-8-sig").splitlines() if s.strip()]
    require(len(seqs) > 0, f"empty sequence list: split {split!r} has no videos", file=iset)
    require(len(set(seqs)) == len(seqs), "duplicate sequence names", file=iset)
    if text_dir is None:
        cands = [root / "davis_text_annotations", root.parent / "davis_text_annotations"]
        text_dir = next((c for c in cands if c.is_dir()), cands[0])
    text_dir = Path(text_dir)
    texts = {}
    for ann, kind, fname, enc in TEXT_FILES:
        texts[(ann, kind)] = read_text_file(text_dir / fname, enc)
    semantics_path = root / "davis_semantics.json"
    semantics = load_json(semantics_path, what="davis_semantics.json") if semantics_path.is_file() else {}

    # expressions per sequence
    seqset = set(seqs)
    known = _all_sequences(root) | seqset  # lines for the other split's videos are expected, not for unknown ones
    unknown_lines: dict[str, list[str]] = {}
    text_objs: dict[str, set[int]] = {}  # every obj_id a text line names, per video (all four files)
    per_seq: dict[str, dict[int, dict[int, tuple]]] = {s: {} for s in seqs}
    for j, ((ann, kind), entries) in enumerate(texts.items()):
        fname = TEXT_FILES[j][2]
        for vid, obj, text, line in entries:
            text_objs.setdefault(vid, set()).add(obj)
            if vid not in known:
                unknown_lines.setdefault(vid, []).append(f"{fname}:{line}")
            if vid not in seqset:
                continue
            slot = per_seq[vid].setdefault(obj, {})
            if j in slot:
                raise RvosError(f"second expression for object {obj} of {vid}", file=text_dir / fname, item=f"line {line}")
            slot[j] = (ann, kind, text, line, fname)

    ann_folder = "Annotations" if annotations == "semi-supervised" else "Annotations_unsupervised"
    jobs = [(s, str(root / "JPEGImages" / "480p" / s), str(root / ann_folder / "480p" / s)) for s in sorted(seqs)]
    with DatasetWriter(out, dataset="refdavis", split=split, frame_root=(root / "JPEGImages" / "480p").resolve(), source_root=root,
                       options={"annotations": annotations, "workers": workers}, overwrite=overwrite) as w:
        w.add_input(iset)
        for _, _, fname, _ in TEXT_FILES:
            w.add_input(text_dir / fname)
        if semantics_path.is_file():
            w.add_input(semantics_path)
        w.add_void([])
        if unknown_lines:
            n = sum(len(v) for v in unknown_lines.values())
            shown = "; ".join(f"{v} ({', '.join(ls[:2])}{' ...' if len(ls) > 2 else ''})" for v, ls in sorted(unknown_lines.items())[:10])
            w.warn("text_lines_for_unknown_videos", f"{text_dir}: {n} text line(s) name {len(unknown_lines)} video(s) that no "
                   f"ImageSets/2017 list and no JPEGImages/480p folder has (ignored): {shown}", n)
        with progress_bar(disable=not show_progress) as bar:
            task = bar.add_task(f"refdavis/{split}", total=len(jobs))
            for seq, names, fnames, (H, W), rows, void_rows in parallel_map(_seq_masks, jobs, ex):
                w.add_video({"video_id": seq, "split": split, "num_frames": len(names), "height": H, "width": W,
                             "frames": names, "frame_files": [f"{seq}/{n}" for n in fnames]})
                present = sorted({r["obj_id"] for r in rows})
                no_text = [o for o in present if o not in text_objs.get(seq, set())]
                if no_text:
                    w.warn("palette_ids_without_expression", f"{root / ann_folder / '480p' / seq}: palette id(s) {no_text} are in "
                           f"the PNGs but no Ref-DAVIS17 text line names them (kept as objects without expressions)", len(no_text))
                cats = semantics.get(seq, {}) if isinstance(semantics, dict) else {}
                w.add_objects({"video_id": seq, "obj_id": o, "anno_id": None, "category": cats.get(str(o))} for o in present)
                exps = []
                for k, obj in enumerate(sorted(per_seq[seq], key=str)):  # ReferFormer sorts obj_id strings
                    for j, (ann, kind, text, line, fname) in sorted(per_seq[seq][obj].items()):
                        require(obj in present, f"expression names obj_id {obj}, which no {ann_folder} PNG of {seq} contains"
                                + (" (try --davis-annotations unsupervised/semi-supervised)"), file=text_dir / fname, item=f"line {line}")
                        exps.append({"video_id": seq, "exp_id": str(4 * k + j), "exp_index": 4 * k + j, "text": text, "obj_ids": [obj],
                                     "anno_ids": None, "annotator": ann, "kind": kind})
                w.add_expressions(exps)
                w.add_masks(seq, rows)
                w.add_void(void_rows)
                bar.advance(task)
    return Path(out)
