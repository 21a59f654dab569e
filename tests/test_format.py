"""The common format: RLE helpers, atomic writes, safe names, schema checks, readability without rvoskit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pycocotools.mask as cocomask
import pytest

from rvoskit.errors import RvosError
from rvoskit.format import arrow_schema, atomic_dir, load_schema, open_dataset, rle, safe_name, table_columns


def test_pixel_count_matches_pycocotools_on_random_and_edge_masks():
    rng = np.random.default_rng(1)
    for i in range(200):
        h, w = (int(x) for x in rng.integers(1, 80, 2))
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if i % 5 == 0:
            m[:] = i % 2  # empty and full masks
        counts = cocomask.encode(np.asfortranarray(m))["counts"]
        assert rle.pixel_count(counts) == h * w
        assert rle.encode(m) == counts
        assert np.array_equal(rle.decode(counts, h, w), m)


def test_pixel_count_rejects_malformed_counts():
    good = rle.encode(np.eye(5, dtype=np.uint8))
    with pytest.raises(ValueError):
        rle.pixel_count(good + b"\x01")  # outside the alphabet
    with pytest.raises(ValueError):
        rle.pixel_count(b"0" * 3 + b"o")  # continuation bit on the last character: truncated
    for bad in (good[:-1], good + b"1"):
        with pytest.raises(ValueError):
            rle.from_native({"size": [5, 5], "counts": bad.decode()}, 5, 5)


def test_from_native_uncompressed_counts_of_real_youtube_vis(data_dir):
    doc = json.loads((data_dir / "ytvis_mmtracking_demo" / "ann_cocovid.json").read_text())
    ann = doc["annotations"][0]
    h, w = ann["segmentation"]["size"]
    counts, H, W = rle.from_native(ann["segmentation"], h, w)
    area, box = rle.area_bbox([counts], H, W)
    assert int(area[0]) == ann["area"]
    assert box[0].tolist() == ann["bbox"]
    with pytest.raises(ValueError, match="differs"):
        rle.from_native(ann["segmentation"], h, w + 1)


def test_safe_name_keeps_ids_inside_their_folder():
    assert safe_name("0ab4afe7fb46") == "0ab4afe7fb46"
    assert safe_name("bike-packing") == "bike-packing"
    for bad in ("..", "../etc", "a/b", ".hidden", "x\\y", "é"):
        name = safe_name(bad)
        assert "/" not in name and "\\" not in name and not name.startswith(".")
    names = {safe_name(x) for x in ("a/b", "a%2Fb", "a_b", "a.b", "a b")}
    assert len(names) == 5


def test_atomic_dir_leaves_nothing_on_failure_and_replaces_on_success(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ZeroDivisionError):
        with atomic_dir(out) as tmp:
            (tmp / "half.txt").write_text("x")
            1 / 0
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RvosError, match="exists"):
        with atomic_dir(out):
            pass
    # --overwrite never replaces a folder that is not an rvoskit output (recognised by its manifest)
    with pytest.raises(RvosError, match="not an rvoskit output"):
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    (out / "labels.json").write_text("{}")
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_schemas_load_and_match_the_written_tables(judo_dataset):
    for table in ("videos", "objects", "expressions", "masks", "void"):
        spec = load_schema(table)
        assert [c["name"] for c in spec["columns"]] == table_columns(table)
        written = pq.read_schema(judo_dataset / f"{table}.parquet")
        assert written.names == arrow_schema(table).names
        for f in arrow_schema(table):
            assert written.field(f.name).type == f.type


def test_tables_are_readable_without_rvoskit(judo_dataset):
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.connect().execute(f"SELECT count(*) FROM '{judo_dataset / 'masks.parquet'}' WHERE obj_id = 1").fetchall()[0][0]
    assert n == 16
    exprs = pd.read_parquet(judo_dataset / "expressions.parquet")
    assert list(exprs["annotator"]) == [1, 1, 2, 2, 1, 1, 2, 2]
    # RLE straight from Parquet decodes with plain pycocotools
    m = pq.read_table(judo_dataset / "masks.parquet").to_pylist()[0]
    mask = cocomask.decode({"size": [m["height"], m["width"]], "counts": m["rle"]})
    assert mask.shape == (480, 854) and int(mask.sum()) == m["area"]


def test_masks_row_groups_are_per_video(tmp_path):
    from rvoskit.datasets.mevis import convert_mevis
    from rvoskit.datasets.synthetic import make_mevis

    make_mevis(tmp_path / "m", num_videos=4)
    out = convert_mevis(tmp_path / "m", "train", tmp_path / "ds")
    pf = pq.ParquetFile(out / "masks.parquet")
    per_group = [set(pf.read_row_group(i, columns=["video_id"]).column(0).to_pylist()) for i in range(pf.num_row_groups)]
    assert all(len(s) == 1 for s in per_group)
    ds = open_dataset(out)
    vids = [v for v, _ in ds.iter_masks()]
    assert vids == sorted(vids) and len(vids) == 4
    one = ds.masks(vids[1])
    assert set(one["video_id"]) == {vids[1]}


def test_reader_refuses_other_versions(judo_dataset, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(judo_dataset, copy)
    m = json.loads((copy / "dataset.json").read_text())
    m["format_version"] = 2
    (copy / "dataset.json").write_text(json.dumps(m))
    with pytest.raises(RvosError, match="version 2"):
        open_dataset(copy)


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from rvoskit.format import atomic_file

    mask = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("1")
        with atomic_file(tmp_path / "f.txt") as tmp:
            tmp.write_text("2")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644


def test_nan_survives_in_non_nullable_float_columns(tmp_path):
    from rvoskit.format import read_table, write_table

    rows = pd.DataFrame({"expression_id": ["v/0"], "video_id": ["v"], "source": ["grid"], "track_id": [0], "obj_ids": [[]],
                         "miou_per_obj": [[]], "miou_max": [float("nan")], "miou_union": [0.5], "label": [False]})
    write_table(tmp_path / "l.parquet", "labels", rows)
    t = read_table(tmp_path / "l.parquet", "labels")
    assert t.column("miou_max").null_count == 0 and np.isnan(t.column("miou_max")[0].as_py())
    preds = pd.DataFrame({"expression_id": ["v/0"], "video_id": ["v"], "exp_id": ["0"], "frame_idx": [0], "height": [2],
                          "width": [2], "rle": [rle.encode(np.eye(2))], "area": [2], "score": [float("nan")]})
    write_table(tmp_path / "p.parquet", "predictions", preds)
    assert read_table(tmp_path / "p.parquet", "predictions").column("score").null_count == 1  # nullable: missing = null


def test_read_frame_ignores_exif_orientation(tmp_path):
    from PIL import Image

    from rvoskit.format import DatasetWriter

    frames = tmp_path / "frames" / "v"
    frames.mkdir(parents=True)
    img = Image.fromarray(np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW" on display
    img.save(frames / "00000.jpg", exif=exif, quality=95)
    with DatasetWriter(tmp_path / "ds", dataset="x", split="s", frame_root=tmp_path / "frames") as w:
        w.add_video({"video_id": "v", "split": "s", "num_frames": 1, "height": 20, "width": 30, "frames": ["00000"],
                     "frame_files": ["v/00000.jpg"]})
    assert open_dataset(tmp_path / "ds").read_frame("v", 0).shape == (20, 30, 3)


def test_area_bbox_of_many_masks_at_once():
    # more than 255 RLEs in one call: pycocotools.mask.area overflows there, area_bbox must not
    rng = np.random.default_rng(3)
    masks = (rng.random((300, 12, 9)) < 0.3).astype(np.uint8)
    areas, boxes = rle.area_bbox(rle.encode_batch(masks), 12, 9)
    assert areas.tolist() == masks.reshape(300, -1).sum(1).tolist()
    assert boxes.shape == (300, 4)


def test_writing_a_null_into_a_non_nullable_column_is_refused(tmp_path):
    from rvoskit.format import write_table

    with pytest.raises(RvosError, match="'text' has 1 null"):
        write_table(tmp_path / "e.parquet", "expressions", [{"expression_id": "v/0", "video_id": "v", "exp_id": "0", "exp_index": 0,
                                                            "text": None, "obj_ids": None, "anno_ids": None, "annotator": None, "kind": None}])
    assert not (tmp_path / "e.parquet").exists()


def test_writer_write_tables_early_gives_the_same_dataset(tmp_path):
    """DatasetWriter.write_tables (convert mevis writes the small tables while masks are still
    being read) gives the same tables and manifest counts as writing them on exit; rows added after
    it are refused rather than lost."""
    import json

    import pyarrow.parquet as pq

    from rvoskit.format import DatasetWriter

    def build(out, early):
        with DatasetWriter(out, dataset="x", split="s", frame_root=tmp_path / "frames") as w:
            for vid in ("b", "a"):
                w.add_video({"video_id": vid, "split": "s", "num_frames": 2, "height": 4, "width": 4, "frames": ["0", "1"],
                             "frame_files": [f"{vid}/0.jpg", f"{vid}/1.jpg"]})
                w.add_objects([{"video_id": vid, "obj_id": 1, "anno_id": None, "category": None}])
                w.add_expressions([{"video_id": vid, "exp_id": "0", "exp_index": 0, "text": "t", "obj_ids": [1], "anno_ids": None,
                                    "annotator": None, "kind": None}])
            if early:
                w.write_tables()
                with pytest.raises(RuntimeError, match="videos rows added after write_tables"):
                    w.add_video({"video_id": "c"})
                with pytest.raises(RuntimeError, match="written already"):
                    w.write_tables()
            w.add_masks("a", [{"video_id": "a", "obj_id": 1, "frame_idx": 0, "height": 4, "width": 4, "rle": b"0<0",
                               "area": 0, "bbox": [0.0, 0.0, 0.0, 0.0]}])
        return json.loads((out / "dataset.json").read_text())

    late, early = build(tmp_path / "late", False), build(tmp_path / "early", True)
    assert early["counts"] == late["counts"] == {"videos": 2, "frames": 4, "objects": 2, "expressions": 2, "masks": 1}
    for t in ("videos", "objects", "expressions", "masks"):
        assert pq.read_table(tmp_path / "early" / f"{t}.parquet").equals(pq.read_table(tmp_path / "late" / f"{t}.parquet"))


def test_a_table_already_in_the_schema_with_a_null_is_refused():
    """to_arrow's fast path (an Arrow table already in the schema, as convert's masks are) still
    refuses nulls in non-nullable columns, with the same message as the full check."""
    import pyarrow as pa

    from rvoskit.format.schema import arrow_schema
    from rvoskit.format.store import to_arrow

    schema = arrow_schema("masks")
    row = {"video_id": "v", "obj_id": 1, "frame_idx": 0, "height": 4, "width": 4, "rle": b"0<0", "area": 0, "bbox": [0.0, 0.0, 0.0, 0.0]}
    good = pa.Table.from_pylist([row], schema=schema)
    assert to_arrow("masks", good).equals(good)
    bad = pa.Table.from_pylist([row, {**row, "frame_idx": None}], schema=schema)
    assert bad.schema.equals(schema, check_metadata=False)
    with pytest.raises(RvosError, match="rows do not fit the masks schema: column 'frame_idx' has 1 null value"):
        to_arrow("masks", bad)
