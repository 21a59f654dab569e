"""Broken input (issue 11 items 5 and 6, issue 10 "correctness and messages"): every case is an
error (exit 2, one line naming the file and the item, no traceback, nothing written) or a warning
plus a count in the summary and in dataset.json; never silent. See schemas/FORMAT.md, "Broken
input: what is an error, what is a warning"."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.datasets.refdavis import convert_refdavis
from rvoskit.datasets.synthetic import make_mevis, make_refdavis, make_refytvos
from rvoskit.errors import RvosError
from rvoskit.format import open_dataset

runner = CliRunner()
SMALL = {"num_frames": 4, "height": 48, "width": 64}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def fails(*args, expect=(), out=None):
    """Exit 2, one ``error:`` line holding every ``expect`` string, no traceback, no output left."""
    res = run(*args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.output
    for e in expect:
        assert str(e) in errors[0], (e, errors[0])
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return errors[0]


def converts(*args, out):
    res = run(*args, "--out", out)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res.output, json.loads((out / "dataset.json").read_text())


# ------------------------------------------------------------------ Ref-DAVIS17
@pytest.fixture()
def davis(tmp_path):
    return make_refdavis(tmp_path / "DAVIS", num_videos=2, **SMALL)


def test_refdavis_root_not_found(tmp_path):
    out = tmp_path / "o"
    fails("convert", "refdavis", tmp_path / "nope", "--out", out, "-q", expect=[tmp_path / "nope", "root not found"], out=out)


def test_refdavis_enters_DAVIS_folder_of_the_referformer_layout(davis, tmp_path):
    # data/ref-davis/{DAVIS/, davis_text_annotations/}: the root given is the one holding DAVIS/
    ref = tmp_path / "ref-davis"
    ref.mkdir()
    shutil.move(str(davis), ref / "DAVIS")
    shutil.move(str(ref / "DAVIS" / "davis_text_annotations"), ref / "davis_text_annotations")
    _, m = converts("convert", "refdavis", ref, "--split", "val", "-q", out=tmp_path / "o")
    assert m["counts"]["videos"] == 1 and m["counts"]["expressions"] == 8


def test_refdavis_unknown_split_lists_the_splits(davis, tmp_path):
    out = tmp_path / "o"
    fails("convert", "refdavis", davis, "--split", "test-dev", "--out", out, "-q", expect=["test-dev", "splits here: train, val"], out=out)


def test_refdavis_empty_split_list(davis, tmp_path):
    (davis / "ImageSets" / "2017" / "val.txt").write_text("\n")
    out = tmp_path / "o"
    fails("convert", "refdavis", davis, "--split", "val", "--out", out, "-q", expect=["val.txt", "empty sequence list"], out=out)


def test_refdavis_missing_jpeg_in_the_middle(davis, tmp_path):
    (davis / "JPEGImages" / "480p" / "dogs-scale" / "00001.jpg").unlink()
    out = tmp_path / "o"
    fails("convert", "refdavis", davis, "--split", "val", "--out", out, "-q",
          expect=["JPEGImages/480p/dogs-scale", "dogs-scale", "missing frame(s) 00001"], out=out)


def test_refdavis_missing_last_jpeg(davis, tmp_path):
    (davis / "JPEGImages" / "480p" / "dogs-scale" / "00003.jpg").unlink()
    out = tmp_path / "o"
    fails("convert", "refdavis", davis, "--split", "val", "--out", out, "-q",
          expect=["Annotations/480p/dogs-scale", "without a frame JPEG: 00003.png"], out=out)


def test_refdavis_missing_annotation_png(davis, tmp_path):
    (davis / "Annotations" / "480p" / "dogs-scale" / "00002.png").unlink()
    out = tmp_path / "o"
    fails("convert", "refdavis", davis, "--split", "val", "--out", out, "-q",
          expect=["Annotations/480p/dogs-scale/00002.png", "dogs-scale", "missing annotation PNG"], out=out)


def test_refdavis_bom_is_read_not_dropped(davis, tmp_path):
    _, clean = converts("convert", "refdavis", davis, "--split", "val", "-q", out=tmp_path / "a")
    p = davis / "davis_text_annotations" / "Davis17_annot1.txt"
    lines = p.read_text(encoding="utf-8").splitlines()
    val_first = [ln for ln in lines if ln.startswith(("dog-scale ", "dogs-scale "))] + [ln for ln in lines if ln.startswith("clasic-car")]
    p.write_bytes("\ufeff".encode() + "\n".join(val_first).encode() + b"\n")  # the BOM before a val video's line
    _, m = converts("convert", "refdavis", davis, "--split", "val", "-q", out=tmp_path / "b")
    assert m["counts"]["expressions"] == clean["counts"]["expressions"] == 8
    assert "\ufeff" not in "".join(open_dataset(tmp_path / "b").expressions["text"])


def test_refdavis_empty_text_file(davis, tmp_path):
    (davis / "davis_text_annotations" / "Davis17_annot2_full_video.txt").write_bytes(b"\n")
    out = tmp_path / "o"
    fails("convert", "refdavis", davis, "--split", "val", "--out", out, "-q",
          expect=["Davis17_annot2_full_video.txt", "empty Ref-DAVIS17 text file"], out=out)


def test_refdavis_text_line_for_unknown_video_is_a_counted_warning(davis, tmp_path):
    p = davis / "davis_text_annotations" / "Davis17_annot1.txt"
    p.write_text(p.read_text() + 'no-such-video 1 "a ghost"\n')
    output, m = converts("convert", "refdavis", davis, "--split", "val", out=tmp_path / "o")
    assert m["warning_counts"] == {"text_lines_for_unknown_videos": 1}
    assert "no-such-video" in m["warnings"][0] and "Davis17_annot1.txt:" in m["warnings"][0]
    assert "text_lines_for_unknown_videos" in output and "no-such-video" in output  # in the summary too


def test_refdavis_palette_id_that_is_no_object_is_a_counted_warning(davis, tmp_path):
    png = davis / "Annotations" / "480p" / "dogs-scale" / "00000.png"
    lab = np.asarray(Image.open(png)).copy()
    lab[:3, :3] = 7
    from rvoskit.datasets.submission import label_png_bytes

    png.write_bytes(label_png_bytes(lab))
    output, m = converts("convert", "refdavis", davis, "--split", "val", out=tmp_path / "o")
    assert m["warning_counts"] == {"palette_ids_without_expression": 1}
    assert "[7]" in m["warnings"][0] and "dogs-scale" in m["warnings"][0]
    assert "[7]" in output  # printed literally, not eaten as markup


# ------------------------------------------------------------------ MeViS
def test_mevis_train_without_mask_dict(tmp_path):
    root = make_mevis(tmp_path / "m", split="train", num_videos=1, **SMALL)
    (root / "train" / "mask_dict.json").unlink()
    out = tmp_path / "o"
    fails("convert", "mevis", root, "--split", "train", "--out", out, "-q", expect=["mask_dict.json", "missing mask_dict.json"], out=out)


def test_mevis_fractional_obj_id(tmp_path):
    root = make_mevis(tmp_path / "m", split="train", num_videos=1, **SMALL)
    p = root / "train" / "meta_expressions.json"
    meta = json.loads(p.read_text())
    vid = next(iter(meta["videos"]))
    eid, e = next(iter(meta["videos"][vid]["expressions"].items()))
    e["obj_id"] = [0.5]
    e["anno_id"] = e["anno_id"][:1] if isinstance(e["anno_id"], list) else [e["anno_id"]]
    p.write_text(json.dumps(meta))
    out = tmp_path / "o"
    fails("convert", "mevis", root, "--split", "train", "--out", out, "-q", expect=["meta_expressions.json", f"{vid}/{eid}", "0.5"], out=out)


# ------------------------------------------------------------------ Ref-YouTube-VOS
@pytest.fixture()
def ytvos(tmp_path):
    root = make_refytvos(tmp_path / "y", num_videos=2, num_frames=4, height=48, width=64, valid_videos=2, test_videos=2)
    return root, json.loads((root / "train" / "meta.json").read_text())


def _write_meta(root, mj):
    (root / "train" / "meta.json").write_text(json.dumps(mj))


def test_refytvos_meta_json_objects_null(ytvos, tmp_path):
    root, mj = ytvos
    vid = sorted(mj["videos"])[0]
    mj["videos"][vid]["objects"] = None
    _write_meta(root, mj)
    out = tmp_path / "o"
    fails("convert", "refytvos", root, "--split", "train", "--out", out, "-q", expect=["meta.json", vid, "'objects' is null"], out=out)


def test_refytvos_meta_json_frames_as_string(ytvos, tmp_path):
    root, mj = ytvos
    vid = sorted(mj["videos"])[0]
    mj["videos"][vid]["objects"]["1"]["frames"] = "00000"
    _write_meta(root, mj)
    out = tmp_path / "o"
    fails("convert", "refytvos", root, "--split", "train", "--out", out, "-q", expect=["meta.json", f"{vid} object 1", "'frames' is str"], out=out)


def test_refytvos_missing_annotation_png(ytvos, tmp_path):
    root, mj = ytvos
    vid = sorted(mj["videos"])[0]
    png = sorted((root / "train" / "Annotations" / vid).iterdir())[1]
    png.unlink()
    out = tmp_path / "o"
    fails("convert", "refytvos", root, "--split", "train", "--out", out, "-q", expect=[png, vid, "missing annotation PNG"], out=out)


def test_refytvos_video_missing_from_meta_json_is_a_counted_warning(ytvos, tmp_path):
    root, mj = ytvos
    vid = sorted(mj["videos"])[0]
    del mj["videos"][vid]
    _write_meta(root, mj)
    output, m = converts("convert", "refytvos", root, "--split", "train", out=tmp_path / "o")
    assert m["warning_counts"] == {"videos_missing_from_meta_json": 1} and vid in m["warnings"][0]
    assert "videos_missing_from_meta_json" in output
    ds = open_dataset(tmp_path / "o")
    assert ds.objects[ds.objects.video_id == vid]["category"].isna().all()  # objects kept, from the expressions


def test_refytvos_valid_without_frames(ytvos, tmp_path):
    root, _ = ytvos
    shutil.rmtree(root / "valid" / "JPEGImages")
    out = tmp_path / "o"
    fails("convert", "refytvos", root, "--split", "valid", "--out", out, "-q", expect=["valid/JPEGImages", "missing frame folder"], out=out)


def test_refytvos_partial_valid_download_names_the_missing_folders(ytvos, tmp_path):
    root, _ = ytvos
    gone = sorted((root / "valid" / "JPEGImages").iterdir())[0]
    shutil.rmtree(gone)
    out = tmp_path / "o"
    # with meta_expressions/test: a valid video without frames
    fails("convert", "refytvos", root, "--split", "valid", "--out", out, "-q", expect=["1 of 2 videos have no frame folder", gone.name], out=out)
    # without it: 1 folder of 4 videos is not the published 202 valid videos
    shutil.rmtree(root / "meta_expressions" / "test")
    fails("convert", "refytvos", root, "--split", "valid", "--out", out, "-q", expect=["202", "partial download", gone.name], out=out)


# ------------------------------------------------------------------ the common format (validate and every reader)
@pytest.fixture(scope="module")
def native(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("native")
    root = make_refdavis(tmp / "DAVIS", num_videos=2, void=False, **SMALL)  # no void pixels: an empty void.parquet
    return root, convert_refdavis(root, "val", tmp / "ds")


def _broken(native, tmp_path, how):
    d = tmp_path / "ds"
    shutil.copytree(native[1], d)
    how(d)
    return d


def _zero_byte(d):
    (d / "masks.parquet").write_bytes(b"")


def _truncated(d):
    b = (d / "masks.parquet").read_bytes()
    (d / "masks.parquet").write_bytes(b[: len(b) // 2])


def _corrupt(d):
    b = bytearray((d / "videos.parquet").read_bytes())
    b[8:200] = b"\x00" * 192
    (d / "videos.parquet").write_bytes(bytes(b))


def _no_area(d):
    pq.write_table(pq.read_table(d / "masks.parquet").drop(["area"]), d / "masks.parquet")


def _frame_idx_strings(d):
    t = pq.read_table(d / "masks.parquet")
    i = t.schema.get_field_index("frame_idx")
    pq.write_table(t.set_column(i, "frame_idx", pa.array([str(x) for x in t["frame_idx"].to_pylist()])), d / "masks.parquet")


def _table_is_dir(d):
    (d / "objects.parquet").unlink()
    (d / "objects.parquet").mkdir()


def _manifest_null(d):
    (d / "dataset.json").write_text("null")


def _frame_root_5(d):
    m = json.loads((d / "dataset.json").read_text())
    m["frame_root"] = 5
    (d / "dataset.json").write_text(json.dumps(m))


CASES = {
    "zero-byte": (_zero_byte, "masks.parquet", "empty file (0 bytes)"),
    "truncated": (_truncated, "masks.parquet", "unreadable Parquet"),
    "corrupt": (_corrupt, "videos.parquet", "unreadable Parquet"),
    "missing-column": (_no_area, "masks.parquet", "missing column 'area'"),
    "frame_idx-strings": (_frame_idx_strings, "masks.parquet", "column 'frame_idx' has type string, expected int32"),
    "table-is-dir": (_table_is_dir, "objects.parquet", "is a directory"),
    "manifest-null": (_manifest_null, "dataset.json", "holds a JSON null"),
    "frame_root-5": (_frame_root_5, "dataset.json", "frame_root: is 5"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_never_crashes(native, tmp_path, case):
    how, file, msg = CASES[case]
    d = _broken(native, tmp_path, how)
    res = run("validate", d)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("✗")]
    assert len(lines) == 1 and f"{d / file}" in lines[0] and msg in lines[0], res.output


@pytest.mark.parametrize("case", list(CASES))
def test_every_reader_gives_the_one_line_error(native, tmp_path, case):
    how, file, msg = CASES[case]
    d = _broken(native, tmp_path, how)
    with pytest.raises(RvosError) as exc:
        ds = open_dataset(d)
        ds.videos, ds.objects, ds.expressions, ds.masks("dogs-scale"), list(ds.iter_masks())  # noqa: B018
    assert str(d / file) in str(exc.value) and msg in str(exc.value) and "\n" not in str(exc.value)


def test_validate_collects_every_problem(native, tmp_path):
    d = _broken(native, tmp_path, lambda d: (_zero_byte(d), _table_is_dir(d)))
    pq.write_table(pq.read_table(d / "expressions.parquet").drop(["text"]), d / "expressions.parquet")
    res = run("validate", d)
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("✗")]
    assert len(lines) == 3, res.output
    assert {"masks.parquet", "objects.parquet", "expressions.parquet"} == {ln.split(": ")[0].rsplit("/", 1)[1] for ln in lines}
    assert any("missing column 'text'" in ln for ln in lines)


@pytest.mark.parametrize("case", ["zero-byte", "frame_idx-strings", "table-is-dir"])
def test_corrupt_refuses_a_broken_table_it_would_copy(native, tmp_path, case):
    how, file, msg = CASES[case]
    d = _broken(native, tmp_path, how)
    out = tmp_path / "c"
    fails("corrupt", d, "-t", "gaussian_noise", "--severity", "1", "--out", out, "-q", expect=[d / file, msg], out=out)


def test_validate_null_values_inside_lists(native, tmp_path):
    d = _broken(native, tmp_path, lambda d: None)
    t = pq.read_table(d / "expressions.parquet")
    i = t.schema.get_field_index("obj_ids")
    vals = t["obj_ids"].to_pylist()
    vals[0] = [None]
    pq.write_table(t.set_column(i, t.schema.field(i), pa.array(vals, type=t.schema.field(i).type)), d / "expressions.parquet")
    t = pq.read_table(d / "videos.parquet")
    i = t.schema.get_field_index("frames")
    frames = t["frames"].to_pylist()
    frames[0][1] = None
    pq.write_table(t.set_column(i, t.schema.field(i), pa.array(frames, type=t.schema.field(i).type)), d / "videos.parquet")
    res = run("validate", d)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert f"{d / 'expressions.parquet'}: dogs-scale/0: null in obj_ids" in res.output
    assert f"{d / 'videos.parquet'}: dogs-scale: null or empty frame name" in res.output


def test_info_missing_column_is_one_line(native, tmp_path):
    d = _broken(native, tmp_path, _no_area)
    fails("info", d, expect=[d / "masks.parquet", "missing column 'area'"])


def test_frame_of_another_size_corrupt_refuses_and_validate_reports(tmp_path):
    root = make_refdavis(tmp_path / "DAVIS", num_videos=2, **SMALL)
    ds = convert_refdavis(root, "val", tmp_path / "ds")
    jpg = root / "JPEGImages" / "480p" / "dogs-scale" / "00002.jpg"
    Image.new("RGB", (32, 24)).save(jpg)
    out = tmp_path / "c"
    fails("corrupt", ds, "-t", "gaussian_noise", "--severity", "1", "--out", out, "-q",
          expect=[jpg, "dogs-scale frame 2", "frame is 24x32, the video is 48x64"])
    assert not out.exists()  # (its .partial is kept: corrupt resumes)
    res = run("validate", ds)
    assert res.exit_code == 2 and "frame is 24x32, the video is 48x64" in res.output and str(jpg) in res.output


def test_pseudolabel_resolution_too_large_is_refused_up_front(native, tmp_path):
    from rvoskit.format.trackstore import TrackStore

    TrackStore(tmp_path / "tracks", create=True, meta={})
    out = tmp_path / "labels"
    fails("pseudolabel", native[1], "--tracks", f"grid={tmp_path / 'tracks'}", "--resolution", "100000x100000", "--out", out, "-q",
          expect=["100000x100000", "too large", "8192"], out=out)


# ------------------------------------------------------------------ empty tables and HF datasets
def test_empty_tables_are_readable_by_hf_datasets(native, ytvos, tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    root, _ = ytvos
    res = run("convert", "refytvos", root, "--split", "valid", "--out", tmp_path / "v", "-q")
    assert res.exit_code == 0, res.output
    valid = tmp_path / "v"  # a split without ground truth: objects.parquet and masks.parquet are empty
    empties = [native[1] / "void.parquet", valid / "objects.parquet", valid / "masks.parquet"]
    for p in empties:
        assert pq.read_table(p).num_rows == 0 and pq.ParquetFile(p).metadata.num_row_groups == 0, p
        it = datasets.load_dataset("parquet", data_files=str(p), streaming=True, split="train", cache_dir=str(tmp_path / "c0"))
        assert list(it) == [] and list(it.features) == pq.read_schema(p).names
    # a split made of several files where one table is empty loads; a zero-row row group (what
    # pq.write_table writes for an empty table, and rvoskit wrote before) fails there
    objs = [str(valid / "objects.parquet"), str(native[1] / "objects.parquet")]
    got = datasets.load_dataset("parquet", data_files=objs, split="train", cache_dir=str(tmp_path / "c1"))
    assert len(got) == len(open_dataset(native[1]).objects) > 0
    zero_group = tmp_path / "zero_group.parquet"
    pq.write_table(pq.read_schema(valid / "objects.parquet").empty_table(), zero_group)
    with pytest.raises(Exception, match="BatchSize must be greater than 0|generating the dataset"):
        datasets.load_dataset("parquet", data_files=[str(zero_group), objs[1]], split="train", cache_dir=str(tmp_path / "c2"))


# ------------------------------------------------------------------ one predictions reader: eval, export, viz
def _png_expr(ds_path, root):
    """Per-expression prediction PNGs equal to the ground truth (<video>/<exp_id>/<frame>.png)."""
    from rvoskit.datasets.submission import mask_png_bytes

    ds = open_dataset(ds_path)
    for eid, e in ds.expressions.iterrows():
        gt = ds.expression_masks(eid)
        d = root / e["video_id"] / e["exp_id"]
        d.mkdir(parents=True)
        for t, f in enumerate(ds.video(e["video_id"])["frames"]):
            (d / f"{f}.png").write_bytes(mask_png_bytes(gt[t]))
    return root


def _zip(folder, dest):
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return dest


def _summary(*args):
    res = run("eval", *args, "-q")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    return json.loads(res.output[res.output.index("{"):])


def test_eval_ignore_unknown_scores_davis_train_plus_val_against_val(judo_dataset, example_root, tmp_path):
    # DAVIS Annotations/480p holds train + val; the dataset is val
    preds = tmp_path / "Annotations480p"
    shutil.copytree(example_root / "Annotations" / "480p", preds)
    shutil.copytree(preds / "judo", preds / "bike-packing")
    fails("eval", judo_dataset, preds, "--protocol", "davis-semi", expect=[preds, "1 unknown video", "bike-packing"])
    res = run("eval", judo_dataset, preds, "--protocol", "davis-semi", "--ignore-unknown")
    assert res.exit_code == 0 and "skipped 1 video(s) not in the dataset (--ignore-unknown): bike-packing" in res.output, res.output
    s = _summary(judo_dataset, preds, "--protocol", "davis-semi", "--ignore-unknown")
    assert s["skipped_unknown_videos"] == ["bike-packing"] and s["J&F-Mean"] == pytest.approx(1.0)
    assert s["extra_prediction_frames"] == 0


def test_eval_counts_extra_prediction_frames(judo_dataset, tmp_path):
    preds = _png_expr(judo_dataset, tmp_path / "p")
    shutil.copy(preds / "judo" / "0" / "00000.png", preds / "judo" / "0" / "00099.png")
    shutil.copy(preds / "judo" / "1" / "00000.png", preds / "judo" / "1" / "99999.png")
    res = run("eval", judo_dataset, preds, "--protocol", "ref-davis")
    assert res.exit_code == 0 and "2 prediction frame(s) are not frames of the dataset videos" in res.output, res.output
    s = _summary(judo_dataset, preds, "--protocol", "ref-davis")
    assert s["extra_prediction_frames"] == 2 and s["extra_prediction_frame_examples"] == ["judo/0/00099.png", "judo/1/99999.png"]
    assert s["J&F"] == pytest.approx(1.0)  # never scored


def test_eval_and_export_read_a_submission_zip_as_its_folder(judo_dataset, tmp_path):
    preds = _png_expr(judo_dataset, tmp_path / "p")
    z = _zip(preds, tmp_path / "sub.zip")
    folder, zipped = (_summary(judo_dataset, x, "--protocol", "ref-davis") for x in (preds, z))
    assert zipped["predictions"] == str(z.resolve()) and zipped["predictions_layout"] == folder["predictions_layout"] == "png-expr"
    for k in ("J&F", "J", "F", "sets"):
        assert zipped[k] == folder[k]
    # export reads the zip as the folder: a DAVIS (anno_k) zip, then evaluated as such
    out = tmp_path / "davis.zip"
    res = run("export", judo_dataset, z, "--to", "davis", "--out", out, "-q")
    assert res.exit_code == 0, res.output
    again = _summary(judo_dataset, out, "--protocol", "ref-davis")
    assert again["predictions_layout"] == "png-sets" and again["J&F"] == pytest.approx(folder["J&F"])
    # an error inside the zip names the zip, not a temporary folder
    (preds / "judo" / "0" / "00003.png").write_bytes(b"not a png")
    bad = _zip(preds, tmp_path / "bad.zip")
    fails("eval", judo_dataset, bad, "--protocol", "ref-davis", expect=[f"{bad}/judo/0/00003.png", "unreadable PNG"])


def test_viz_predictions_reads_every_form_eval_reads(judo_dataset, example_root, tmp_path):
    preds = _png_expr(judo_dataset, tmp_path / "p")
    for i, src in enumerate([preds, _zip(preds, tmp_path / "p.zip"), example_root / "Annotations" / "480p"]):
        out = tmp_path / f"viz{i}"
        res = run("viz", "predictions", judo_dataset, src, "--out", out, "-q")
        assert res.exit_code == 0, res.output
        assert (out / "judo.png").is_file()
    # the wrong input is named as such
    out = tmp_path / "vbad"
    fails("viz", "predictions", judo_dataset, judo_dataset, "--out", out, "-q",
          expect=[judo_dataset, "this is an rvoskit dataset, not predictions", "expected a predictions directory"])


def test_viz_predictions_refuses_the_malformed_rle_eval_refuses(judo_dataset, tmp_path):
    from rvoskit.format import rle as rlemod
    from rvoskit.format.predictions import write_predictions

    ds = open_dataset(judo_dataset)
    v = ds.video("judo")
    H, W = int(v["height"]), int(v["width"])
    rows = []
    for eid, e in ds.expressions.iterrows():
        gt = ds.expression_masks(eid)
        for t in range(int(v["num_frames"])):
            rows.append({"expression_id": eid, "video_id": "judo", "exp_id": e["exp_id"], "frame_idx": t, "height": H, "width": W,
                         "rle": rlemod.encode(gt[t]), "area": int(gt[t].sum()), "score": 1.0})
    rows[3]["rle"] = rlemod.encode(np.ones((H, W // 2), np.uint8))  # covers half the pixels
    pred = write_predictions(tmp_path / "pred", rows, dataset=judo_dataset)
    item = f"judo/{rows[3]['exp_id']} frame {v['frames'][3]}"
    fails("eval", judo_dataset, pred, "--protocol", "ref-davis", expect=["predictions.parquet", item, "malformed RLE"])
    out = tmp_path / "viz"
    fails("viz", "predictions", judo_dataset, pred, "--out", out, "-q", expect=["predictions.parquet", item, "malformed RLE"])
    # inputs swapped: the message says what was expected and what was found
    fails("eval", pred, judo_dataset, expect=[pred, "not an rvoskit dataset", "this looks like a predictions folder"])


def test_mevis_frame_name_with_a_path_is_named_as_such(tmp_path):
    root = make_mevis(tmp_path / "m", split="train", num_videos=1, **SMALL)
    p = root / "train" / "meta_expressions.json"
    meta = json.loads(p.read_text())
    vid = next(iter(meta["videos"]))
    meta["videos"][vid]["frames"][-1] = "zz/../" + meta["videos"][vid]["frames"][-1]  # still sorted
    p.write_text(json.dumps(meta))
    out = tmp_path / "o"
    fails("convert", "mevis", root, "--split", "train", "--out", out, "-q", expect=["not a plain file name", "zz/../", vid], out=out)


def test_mevis_m_object_span_on_the_valid_split_says_why(tmp_path):
    root = make_mevis(tmp_path / "m", split="valid", num_videos=1, **SMALL)
    meta = json.loads((root / "valid" / "meta_expressions.json").read_text())
    vid = next(iter(meta["videos"]))
    eid = next(iter(meta["videos"][vid]["expressions"]))
    overlay = tmp_path / "spans.json"
    overlay.write_text(json.dumps({"format": "rvoskit-mevis-m-overlay", "version": 1, "frame_ref": "index",
                                   "videos": {vid: {eid: {"0": [[0, 1]]}}}}))
    out = tmp_path / "o"
    fails("convert", "mevis-m", root, "--split", "valid", "--overlay", overlay, "--out", out, "-q",
          expect=["no object ids", "expression-level spans", "spans.json"], out=out)
