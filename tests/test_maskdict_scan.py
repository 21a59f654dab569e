"""The compiled mask_dict.json path of ``convert mevis`` (rvoskit.datasets.maskdict_scan) against
the references: pycocotools (area, toBbox of the same RLE), the exact one-at-a-time check
(rle.pixel_count) and Python's json (values and errors of the exact JsonObjectIndex scan)."""

from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as cocomask
import pytest

pytest.importorskip("numba")

from rvoskit.datasets import maskdict_scan as ms  # noqa: E402
from rvoskit.datasets.jsonindex import JsonObjectIndex  # noqa: E402
from rvoskit.errors import RvosError  # noqa: E402
from rvoskit.format import rle as rlemod  # noqa: E402


def _parse(text: str):
    """parse_values over one JSON list value."""
    b = np.frombuffer(text.encode(), np.uint8).copy()
    return ms.parse_values(b, np.array([0], np.int64), np.array([b.size], np.int64))


def _random_counts(rng, h, w) -> bytes:
    kind = rng.integers(5)
    if kind == 0:  # a real-looking mask
        m = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(0, 4))):
            y, x = rng.integers(0, h), rng.integers(0, w)
            m[max(0, y - rng.integers(0, h)): y + 1, max(0, x - rng.integers(0, w)): x + 1] = 1
        return cocomask.encode(np.asfortranarray(m))["counts"]
    if kind == 1:  # empty or full
        return cocomask.encode(np.asfortranarray(np.full((h, w), rng.integers(2), np.uint8)))["counts"]
    # random run lengths covering h * w, zero-length runs included (pycocotools' uncompressed input)
    cuts = np.sort(rng.integers(0, h * w + 1, int(rng.integers(0, 12))))
    runs = np.diff(np.concatenate(([0], cuts, [h * w]))).tolist()
    return cocomask.frPyObjects({"size": [h, w], "counts": runs}, h, w)["counts"]


def _mutate(rng, c: bytes) -> bytes:
    c = bytearray(c)
    for _ in range(int(rng.integers(1, 3))):
        op = rng.integers(4)
        if op == 0 and c:
            c[rng.integers(len(c))] = int(rng.integers(40, 120))  # inside and outside the alphabet
        elif op == 1 and c:
            del c[rng.integers(len(c)):]
        elif op == 2:
            c.insert(int(rng.integers(len(c) + 1)), int(rng.integers(48, 112)))
        elif c:
            del c[rng.integers(len(c))]
    return bytes(c)


def _exact_total(c: bytes):
    try:
        return rlemod.pixel_count(c)
    except ValueError:
        return None


def test_rle_stats_match_pycocotools_and_the_exact_check():
    rng = np.random.default_rng(0)
    n_ok = n_bad = 0
    for _ in range(3000):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        c = _random_counts(rng, h, w)
        if rng.random() < 0.5:
            c = _mutate(rng, c)
        if rng.random() < 0.1:  # a run of 12 or 13 characters, or a huge one
            c = c + bytes([int(rng.integers(80, 112))] * int(rng.integers(10, 13))) + b"0"
        seg = {"counts": c.decode("latin-1"), "size": [h, w]}
        if rng.random() < 0.5:  # "size" first (checked while copied) or "counts" first (checked after)
            seg = {"size": [h, w], "counts": seg["counts"]}
        text = json.dumps([None, seg])
        if any(ch < 32 or ch > 126 for ch in c) or b'"' in c:
            continue  # outside the fast subset (the JSON text has other escapes): covered below
        ok, n_el, el_h, el_w, status, area, bbox, data, offsets = _parse(text)
        assert ok and list(n_el) == [2] and list(el_h) == [-1, h] and list(el_w) == [-1, w]
        assert bytes(data) == c and list(offsets) == [0, len(c)]
        expect_ok = _exact_total(c) == h * w
        assert (status[1] == ms.RLE_OK) == expect_ok or status[1] == ms.RLE_EXACT, (c, h, w)
        if status[1] == ms.RLE_OK:
            n_ok += 1
            obj = {"size": [h, w], "counts": c}
            assert area[1] == int(cocomask.area(obj)), c
            assert bbox[1].tolist() == cocomask.toBbox(obj).tolist(), (c, h, w)
        else:
            n_bad += 1
    assert n_ok > 500 and n_bad > 500


def test_rle_stats_on_a_huge_run_defer_to_the_exact_check():
    # a run of 2**45 pixels cancelled by the next one: the vectorised totals defer these to pixel_count
    h = w = 4
    for c in (b"0" + b"o" * 9 + b"?" + b"0", b"P" * 11 + b"1" + b"0"):
        ok, *_rest = _parse(json.dumps([{"size": [h, w], "counts": c.decode()}]))
        status = _rest[3]
        assert ok and status[0] in (ms.RLE_BAD, ms.RLE_EXACT)
        if _exact_total(c) == h * w:
            assert status[0] == ms.RLE_EXACT


def test_parse_values_copies_counts_around_every_escape():
    # the counts are copied a run of bytes at a time between escaped backslashes; a string with more
    # escapes than the kernel's scratch holds (1,024) takes the general copy: both give the bytes
    rng = np.random.default_rng(1)
    seen = set()
    for n_runs in (1, 6, 200, 6000, 25000):
        runs = rng.integers(0, 3000, n_runs)
        if n_runs == 1:
            runs[:] = 44  # "\\" alone: a run of one escaped character
        h = int(runs.sum())
        c = cocomask.frPyObjects({"size": [h, 1], "counts": runs.tolist()}, h, 1)["counts"]
        ok, n_el, el_h, el_w, status, area, bbox, data, offsets = _parse(json.dumps([{"size": [h, 1], "counts": c.decode()}]))
        assert ok and bytes(data) == c and list(offsets) == [0, len(c)] and status[0] == ms.RLE_OK
        obj = {"size": [h, 1], "counts": c}
        assert area[0] == int(cocomask.area(obj)) and bbox[0].tolist() == cocomask.toBbox(obj).tolist()
        seen.add(min(c.count(b"\\"), 1025))
    assert 0 in seen and 1025 in seen and any(0 < k < 1025 for k in seen)  # none, some, too many for the scratch


def test_parse_values_json_subset_and_bail():
    c = cocomask.encode(np.asfortranarray(np.eye(5, dtype=np.uint8)))["counts"].decode()
    same = [
        f'[null,{{"size":[5,5],"counts":"{c}"}}]',
        f'[ null ,\n\t{{ "counts" : "{c}" ,\r "size" : [ 5 , 5 ] }} ]',
        f'[null, {{"size": [5, 5], "counts": "{c}"}}]',
    ]
    for text in same:
        ok, n_el, el_h, el_w, status, area, bbox, data, offsets = _parse(text)
        assert ok and list(el_h) == [-1, 5] and bytes(data) == c.encode() and status[1] == ms.RLE_OK
    assert bytes(_parse('[{"size": [1, 1], "counts": "0\\\\"}]')[7]) == b"0\\"  # an escaped backslash
    bail = [
        f'[{{"size": [5, 5], "counts": "{c}", "extra": 1}}]',  # another key
        f'[{{"size": [5.0, 5], "counts": "{c}"}}]',  # a float
        f'[{{"size": [05, 5], "counts": "{c}"}}]',  # invalid JSON
        f'[{{"size": [-5, 5], "counts": "{c}"}}]',
        f'[{{"size": [5, 5], "counts": "\\u0030"}}]',  # an escape other than a backslash
        f'[{{"size": [5, 5], "size": [5, 5], "counts": "{c}"}}]',  # duplicate key
        f'[{{"counts": "{c}"}}]',
        '[false]', '[0]', '[[]]', '{}', '[null,]', '[nul]', '[null', f'[{{"size": [5, 5], "counts": "{c}"}}, ]',
    ]
    for text in bail:
        assert not _parse(text)[0], text


def _index_result(path, fast):
    try:
        ix = JsonObjectIndex(path, fast=fast)
        return ("ok", dict(ix.ranges), ix.fast)
    except RvosError as exc:
        return ("error", str(exc), None)


def test_index_fast_scan_equals_the_python_scan(tmp_path):
    """Every text the compiled scan takes gives the Python scan's ranges; everything else falls back
    to it (same errors). Mutations of a small mask_dict (whitespace, escapes, truncation, junk)."""
    rng = np.random.default_rng(1)
    c = cocomask.encode(np.asfortranarray(np.eye(6, dtype=np.uint8)))["counts"].decode()
    base = json.dumps({"3": [None, {"size": [6, 6], "counts": c}], "10": [], "xy": [None]}, indent=int(rng.integers(0, 3)))
    alphabet = list(' \t\n\r{}[],:"\\0123456789nulsizecountsfae.-E') + ["\\u0030", "\\\\", "\\n"]
    taken = 0
    for k in range(400):
        t = list(base)
        for _ in range(int(rng.integers(0, 3))):
            op = rng.integers(3)
            pos = int(rng.integers(len(t) + 1))
            if op == 0:
                t.insert(pos, alphabet[int(rng.integers(len(alphabet)))])
            elif op == 1 and pos < len(t):
                del t[pos]
            elif pos < len(t):
                t[pos] = alphabet[int(rng.integers(len(alphabet)))]
        text = "".join(t)
        p = tmp_path / f"m{k}.json"
        p.write_text(text)
        slow = _index_result(p, False)
        fast = _index_result(p, True)
        if fast[0] == "ok" and fast[2]:
            taken += 1
            assert slow[0] == "ok" and slow[1] == fast[1], text
            for key, (s, e) in fast[1].items():  # and each value is what json gives
                assert json.loads(text.encode()[s:e]) == JsonObjectIndex(p, fast=False).get(key)
        else:
            assert fast[:2] == slow[:2], text
    assert taken > 20


def test_index_fast_scan_handles_chunk_edges(tmp_path):
    rng = np.random.default_rng(2)
    d = {str(a): [None if rng.random() < 0.3 else {"size": [7, 9], "counts": _random_counts(rng, 7, 9).decode()}
                  for _ in range(int(rng.integers(0, 30)))] for a in range(300)}
    p = tmp_path / "mask_dict.json"
    p.write_text(json.dumps(d) + "\n  trailing bytes are ignored, as by the Python scan")
    fast = JsonObjectIndex(p, chunk=1 << 10)  # the buffer grows and refills many times
    slow = JsonObjectIndex(p, fast=False)
    assert fast.fast and fast.ranges == slow.ranges
    raw, s, e = fast.read_raw(["5", "299", "0"])
    assert [json.loads(raw[a:b].tobytes()) for a, b in zip(s, e)] == [d["5"], d["299"], d["0"]]


def _convert_outcome(root, out, monkeypatch, fast: bool):
    """convert_mevis with the compiled path on or off: ('ok', tables) or ('error', message)."""
    import functools

    import pyarrow.parquet as pq

    from rvoskit.datasets import mevis

    monkeypatch.setattr(mevis, "JsonObjectIndex", functools.partial(JsonObjectIndex, fast=fast))
    try:
        mevis.convert_mevis(root, "train", out, overwrite=True)
    except RvosError as exc:
        return ("error", str(exc))
    finally:
        monkeypatch.undo()
    return ("ok", {t: pq.read_table(out / f"{t}.parquet") for t in ("videos", "objects", "expressions", "masks")})


def test_convert_fast_path_gives_the_exact_paths_tables_and_errors(tmp_path, monkeypatch):
    """Malformed counts, sizes, frame counts, key order, escapes and JSON layouts: the compiled path
    and the exact (json + pixel_count + pycocotools) path give the same tables or the same error."""
    from rvoskit.datasets.synthetic import make_mevis

    root = make_mevis(tmp_path / "m", split="train", num_videos=2, num_frames=5, height=24, width=32)
    mask = root / "train" / "mask_dict.json"
    orig = json.loads(mask.read_text())
    rng = np.random.default_rng(3)
    keys = [k for k, v in orig.items() if any(v)]
    kinds = ["char", "total", "trunc", "size", "frames", "order", "extra", "escape", "indent", "null", "false", "long", "none"]
    seen = set()
    for case in range(2 * len(kinds)):
        kind = kinds[case % len(kinds)]
        d = json.loads(json.dumps(orig))
        k = keys[int(rng.integers(len(keys)))]
        t = next(i for i, s in enumerate(d[k]) if s)
        seg = d[k][t]
        c = seg["counts"]
        if kind == "char":
            seg["counts"] = c[:-1] + "~"
        elif kind == "total":
            seg["counts"] = rlemod.encode(np.ones((24, 31), np.uint8)).decode()
        elif kind == "trunc":
            seg["counts"] = c + "h"
        elif kind == "size":
            seg["size"] = [24, 33]
        elif kind == "frames":
            d[k].append(None)
        elif kind == "order":
            d[k][t] = {"counts": c, "size": seg["size"]}
        elif kind == "extra":
            seg["iscrowd"] = 0
        elif kind == "null":
            d[k][t] = None
        elif kind == "false":
            d[k][t] = False
        elif kind == "long":
            seg["counts"] = "o" * 12 + "0" + c
        text = json.dumps(d, indent=1 if kind == "indent" else None)
        if kind == "escape":
            text = text.replace('"size"', '"\\u0073ize"', 1)
        mask.write_text(text)
        fast = _convert_outcome(root, tmp_path / "fast", monkeypatch, True)
        slow = _convert_outcome(root, tmp_path / "slow", monkeypatch, False)
        assert fast[0] == slow[0], (kind, fast, slow)
        if fast[0] == "error":
            assert fast[1] == slow[1], kind
            assert "mask_dict.json" in fast[1]
        else:
            assert all(fast[1][n].equals(slow[1][n]) for n in fast[1]), kind
        seen.add((kind, fast[0]))
    assert {("char", "error"), ("total", "error"), ("trunc", "error"), ("size", "error"), ("frames", "error"), ("order", "ok"),
            ("extra", "ok"), ("escape", "ok"), ("indent", "ok"), ("long", "error")} <= seen


def _real_rles():
    """Real RLEs: the YouTube-VIS results of tests/data/ytvis_mmtracking_demo (720x1280, pycocotools
    strings) and the DAVIS 2017 sample result PNGs (real object shapes, encoded by pycocotools)."""
    from pathlib import Path

    from PIL import Image

    data = Path(__file__).parent / "data"
    videos = []  # (H, W, T, [per-object list of counts | None])
    for inst_video in json.loads((data / "ytvis_mmtracking_demo" / "results_ytvis.json").read_text()):
        segs = inst_video["segmentations"]
        h, w = next(s["size"] for s in segs if s)
        videos.append((h, w, len(segs), [[s["counts"] if s else None for s in segs]]))
    for seq in sorted((data / "davis17_eval_sample_results" / "semi-supervised").glob("*/*"))[:3]:
        labels = [np.asarray(Image.open(p)) for p in sorted(seq.glob("*.png"))]
        if not labels:
            continue
        h, w = labels[0].shape
        ids = sorted({int(i) for lab in labels for i in np.unique(lab)} - {0})
        objs = [[rlemod.encode(lab == i).decode() if (lab == i).any() else None for lab in labels] for i in ids]
        videos.append((h, w, len(labels), objs))
    return videos


def test_convert_fast_path_on_real_rles(tmp_path, monkeypatch):
    """Real RLE strings (tests/data fixtures) in a MeViS split: the compiled path gives the exact
    path's tables, and its areas and boxes are pycocotools'."""
    import cv2
    import pyarrow.parquet as pq

    videos = _real_rles()
    assert len(videos) >= 3
    sdir = tmp_path / "real" / "train"
    meta, mask_dict, anno = {"videos": {}}, {}, 0
    for v, (h, w, T, objs) in enumerate(videos):
        vid = f"v{v:03d}"
        names = [f"{t:05d}" for t in range(T)]
        (sdir / "JPEGImages" / vid).mkdir(parents=True)
        for n in names:
            cv2.imwrite(str(sdir / "JPEGImages" / vid / f"{n}.jpg"), np.zeros((h, w, 3), np.uint8))
        exps = {}
        for k, segs in enumerate(objs):
            mask_dict[str(anno)] = [{"size": [h, w], "counts": c} if c else None for c in segs]
            exps[str(k)] = {"exp": f"object {k}", "obj_id": [k], "anno_id": [anno]}
            anno += 1
        meta["videos"][vid] = {"frames": names, "expressions": exps}
    (sdir / "meta_expressions.json").write_text(json.dumps(meta))
    (sdir / "mask_dict.json").write_text(json.dumps(mask_dict))
    fast = _convert_outcome(tmp_path / "real", tmp_path / "fast", monkeypatch, True)
    slow = _convert_outcome(tmp_path / "real", tmp_path / "slow", monkeypatch, False)
    assert fast[0] == slow[0] == "ok", (fast, slow)
    assert all(fast[1][n].equals(slow[1][n]) for n in fast[1])
    ix = JsonObjectIndex(sdir / "mask_dict.json")  # the compiled path took every value (not the fallback)
    raw, s, e = ix.read_raw(list(ix.ranges))
    ok, n_el, el_h, el_w, status, *_ = ms.parse_values(raw, s, e)
    assert ix.fast and ok and not status.any() and (el_h >= 0).sum() > 200
    masks = pq.read_table(tmp_path / "fast" / "masks.parquet").to_pylist()
    for r in masks:
        obj = {"size": [r["height"], r["width"]], "counts": r["rle"]}
        assert r["area"] == int(cocomask.area(obj)) and r["bbox"] == cocomask.toBbox(obj).tolist()


def test_convert_reports_the_first_videos_error_first(tmp_path):
    """Masks are checked in a second thread while the next video is read: a mask error of the first
    video (sorted order) still comes before a frame error of the second, as in a sequential run."""
    import shutil

    from rvoskit.datasets.mevis import convert_mevis
    from rvoskit.datasets.synthetic import make_mevis

    root = make_mevis(tmp_path / "m", split="train", num_videos=2, num_frames=4, height=16, width=16)
    sdir = root / "train"
    meta = json.loads((sdir / "meta_expressions.json").read_text())
    first, second = sorted(meta["videos"])
    d = json.loads((sdir / "mask_dict.json").read_text())
    anno = str(meta["videos"][first]["expressions"]["0"]["anno_id"][0])
    t = next(i for i, s in enumerate(d[anno]) if s)
    d[anno][t]["counts"] = d[anno][t]["counts"][:-1] + "~"  # outside the RLE alphabet
    (sdir / "mask_dict.json").write_text(json.dumps(d))
    shutil.rmtree(sdir / "JPEGImages" / second)
    with pytest.raises(RvosError, match=f"mask_dict.json.*anno_id {anno} \\(video {first}\\) frame {t}"):
        convert_mevis(root, "train", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mask_at,frame_at,write_at,want", [
    (2, 9, None, "mask"), (5, 1, None, "frame"), (3, 3, None, "frame"), (6, None, 4, "write"), (4, None, 4, "mask"),
    (None, 7, 7, "frame"), (None, 8, 2, "write")])
def test_convert_errors_come_in_sequential_order_with_the_reader_behind(tmp_path, monkeypatch, mask_at, frame_at, write_at, want):
    """The video thread runs ahead of the masks reader and writer: whichever error a sequential run
    meets first (video order; in one video: its frames, then its masks' read, then their write)
    is the one raised, and nothing is left at the output."""
    import shutil

    from rvoskit.datasets.mevis import convert_mevis
    from rvoskit.datasets.synthetic import make_mevis
    from rvoskit.format import DatasetWriter

    root = make_mevis(tmp_path / "m", split="train", num_videos=10, num_frames=3, height=12, width=16)
    sdir = root / "train"
    meta = json.loads((sdir / "meta_expressions.json").read_text())
    vids = sorted(meta["videos"])
    if mask_at is not None:
        d = json.loads((sdir / "mask_dict.json").read_text())
        anno = str(meta["videos"][vids[mask_at]]["expressions"]["0"]["anno_id"][0])
        t = next(i for i, s in enumerate(d[anno]) if s)
        d[anno][t]["counts"] = d[anno][t]["counts"][:-1] + "~"
        (sdir / "mask_dict.json").write_text(json.dumps(d))
    if frame_at is not None:
        shutil.rmtree(sdir / "JPEGImages" / vids[frame_at])
    if write_at is not None:
        real = DatasetWriter.add_masks

        def add_masks(self, video_id, rows):
            if video_id == vids[write_at]:
                raise OSError(28, "No space left on device (test)")
            return real(self, video_id, rows)

        monkeypatch.setattr(DatasetWriter, "add_masks", add_masks)
    at = {"mask": mask_at, "frame": frame_at, "write": write_at}[want]
    match = {"mask": f"video {vids[at]}.*malformed RLE", "frame": f"{vids[at]}", "write": "No space left"}[want]
    with pytest.raises((RvosError, OSError), match=match) as e:
        convert_mevis(root, "train", tmp_path / "out")
    if want == "frame":
        assert "missing frame folder" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_numba_is_a_core_dependency_and_install_compiles_the_kernels():
    """convert mevis needs numba at run time: a core dependency, its kernels compiled once by
    scripts/install.sh into numba's on-disk cache (cache=True on every kernel)."""
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("numba") for d in deps)
    from rvoskit import _jit

    assert "rvoskit.datasets.maskdict_scan" in _jit.KERNEL_MODULES  # install.sh: python -m rvoskit._jit
    for k in (ms.scan_top, ms.parse_values, ms.rle_stats):
        assert k._cache.__class__.__name__ != "NullCache"


def test_int_column_reads_the_buffers_as_to_numpy_does():
    """store._int_column (the masks writer's sort check without pandas) on sliced, multi-chunk and
    nullable integer columns."""
    import pyarrow as pa

    from rvoskit.format.store import _int_column

    rng = np.random.default_rng(5)
    for dtype in (np.int64, np.int32):
        for _ in range(20):
            parts = [pa.array(rng.integers(-1000, 1000, int(rng.integers(0, 30))).astype(dtype)) for _ in range(int(rng.integers(1, 4)))]
            parts = [p.slice(int(rng.integers(0, len(p) + 1))) if len(p) else p for p in parts]
            t = pa.table({"x": pa.chunked_array(parts, pa.from_numpy_dtype(dtype))})
            if rng.random() < 0.5:
                t = t.slice(int(rng.integers(0, t.num_rows + 1)))
            got = _int_column(t, "x")
            assert got.dtype == dtype and got.tolist() == t.column("x").to_pylist()
    t = pa.table({"x": pa.array([1, None, 3], pa.int64())})
    assert np.isnan(_int_column(t, "x")[1])  # nulls: pyarrow's own conversion


@pytest.mark.parametrize("unknown_at,frame_at,same_video,broken_index,want", [
    (3, 5, False, False, "unknown"), (6, 2, False, False, "frame"), (4, 4, False, False, "frame"),
    (3, None, True, False, "unknown"), (None, 3, True, False, "frame"), (None, None, True, False, "length"),
    (2, 0, False, True, "index"), (None, None, False, True, "index")])
def test_convert_checks_anno_ids_while_the_index_is_built_in_sequential_order(tmp_path, monkeypatch, unknown_at, frame_at, same_video,
                                                                                broken_index, want):
    """The videos' rows are added while mask_dict.json is still being indexed (here slowed down):
    "anno_id in mask_dict.json" is then checked by the video's masks job, and the error raised is
    still the one a sequential run meets first (the index's before any video's; in one video, its
    frames, then its expressions in order)."""
    import shutil
    import time

    from rvoskit.datasets import mevis
    from rvoskit.datasets.mevis import convert_mevis
    from rvoskit.datasets.synthetic import make_mevis

    def slow_index(path):
        time.sleep(0.5)
        return JsonObjectIndex(path)

    monkeypatch.setattr(mevis, "JsonObjectIndex", slow_index)

    root = make_mevis(tmp_path / "m", split="train", num_videos=8, num_frames=3, height=12, width=16)
    sdir = root / "train"
    meta = json.loads((sdir / "meta_expressions.json").read_text())
    vids = sorted(meta["videos"])
    if unknown_at is not None:
        meta["videos"][vids[unknown_at]]["expressions"]["0"]["anno_id"][0] = 99999
    if same_video:  # a later expression of the same video with another error
        e = meta["videos"][vids[unknown_at if unknown_at is not None else 3]]["expressions"]["1"]
        e["obj_id"] = e["obj_id"] + [77]
    (sdir / "meta_expressions.json").write_text(json.dumps(meta))
    if frame_at is not None:
        shutil.rmtree(sdir / "JPEGImages" / vids[frame_at])
    if broken_index:
        (sdir / "mask_dict.json").write_bytes((sdir / "mask_dict.json").read_bytes()[:-2])
    match = {"unknown": f"meta_expressions.json.*{vids[unknown_at or 0]}/0.*anno_id 99999 is not in mask_dict.json",
             "frame": f"{vids[frame_at or 0]}: missing frame folder", "length": "obj_id and anno_id lists differ in length",
             "index": "mask_dict.json.*truncated or invalid JSON"}[want]
    with pytest.raises(RvosError, match=match):
        convert_mevis(root, "train", tmp_path / "out")
    assert not (tmp_path / "out").exists()
