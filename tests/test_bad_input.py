"""Bad native input: one clear error naming the file and the item, exit status 2, no output left behind."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.datasets.synthetic import make_mevis, make_refdavis, make_refytvos

runner = CliRunner()


def _run_fails(args, out, *expected):
    res = runner.invoke(app, [str(a) for a in args] + ["--out", str(out), "--quiet"])
    assert res.exit_code == 2, res.output
    msg = " ".join(res.output.split())  # rich may wrap long lines
    for e in expected:
        assert str(e) in msg, (e, msg)
    assert "Traceback" not in res.output
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no temporary leftovers
    return msg


@pytest.fixture()
def mevis(tmp_path):
    root = make_mevis(tmp_path / "mevis", split="train", num_videos=2, num_frames=5)
    meta_p = root / "train" / "meta_expressions.json"
    masks_p = root / "train" / "mask_dict.json"
    return root, meta_p, masks_p, json.loads(meta_p.read_text()), json.loads(masks_p.read_text())


def test_truncated_json(mevis, tmp_path):
    root, meta_p, masks_p, meta, _ = mevis
    masks_p.write_text(masks_p.read_text()[:-40])
    _run_fails(["convert", "mevis", root], tmp_path / "o", "mask_dict.json", "truncated")
    meta_p.write_text(meta_p.read_text()[:-10])
    _run_fails(["convert", "mevis", root], tmp_path / "o", "meta_expressions.json", "truncated")


def test_invalid_json(mevis, tmp_path):
    root, meta_p, *_ = mevis
    meta_p.write_text(meta_p.read_text().replace(":", "=", 1))
    _run_fails(["convert", "mevis", root], tmp_path / "o", "meta_expressions.json", "invalid JSON", "line 1")


def test_missing_frame_folder(mevis, tmp_path):
    root, _, _, meta, _ = mevis
    vid = sorted(meta["videos"])[1]
    shutil.rmtree(root / "train" / "JPEGImages" / vid)
    _run_fails(["convert", "mevis", root], tmp_path / "o", vid, "missing frame folder")


def test_missing_single_frame(mevis, tmp_path):
    root, _, _, meta, _ = mevis
    vid = sorted(meta["videos"])[0]
    (root / "train" / "JPEGImages" / vid / "00003.jpg").unlink()
    _run_fails(["convert", "mevis", root], tmp_path / "o", vid, "missing frame '00003'")


def test_mask_size_differs_from_frame_mevis(mevis, tmp_path):
    root, _, masks_p, meta, masks = mevis
    key = next(k for k, v in masks.items() if v[2])
    h, w = masks[key][2]["size"]
    m = np.zeros((h, w + 1), np.uint8)
    m[2:5, 2:5] = 1
    from rvoskit.format import rle

    masks[key][2] = {"size": [h, w + 1], "counts": rle.encode(m).decode()}
    masks_p.write_text(json.dumps(masks))
    _run_fails(["convert", "mevis", root], tmp_path / "o", "mask_dict.json", f"anno_id {key}", "frame 2", "differs from the frame")


def test_mask_size_differs_from_frame_real_cutie_png(example_root, data_dir, tmp_path):
    # the real Cutie demo mask 00005.png is 853 px wide, the judo frames 854
    root = tmp_path / "davis"
    shutil.copytree(example_root, root)
    shutil.copy(data_dir / "davis17_judo_frames_cutie" / "demo_masks" / "judo" / "00005.png", root / "Annotations" / "480p" / "judo" / "00005.png")
    _run_fails(["convert", "refdavis", root, "--split", "val"], tmp_path / "o", "00005.png", "judo", "853", "differs from the frame")


def test_malformed_rle(mevis, tmp_path):
    root, _, masks_p, _, masks = mevis
    key = next(k for k, v in masks.items() if v[1])
    masks[key][1]["counts"] = masks[key][1]["counts"][:-2]
    masks_p.write_text(json.dumps(masks))
    _run_fails(["convert", "mevis", root], tmp_path / "o", "mask_dict.json", f"anno_id {key}", "frame 1", "malformed RLE")


def test_duplicate_ids(mevis, tmp_path):
    root, meta_p, _, meta, _ = mevis
    vid = sorted(meta["videos"])[0]
    text = meta_p.read_text()
    dup = text.replace('"videos": {', '"videos": {' + json.dumps(vid) + ": {}, ", 1)
    meta_p.write_text(dup)
    _run_fails(["convert", "mevis", root], tmp_path / "o", "meta_expressions.json", "duplicate key", vid)


def test_duplicate_expression_ids_in_davis_text(example_root, tmp_path):
    root = tmp_path / "davis"
    shutil.copytree(example_root, root)
    p = root / "davis_text_annotations" / "Davis17_annot1.txt"
    p.write_text(p.read_text() + 'judo 1 "a second first-frame expression for the same object"\n')
    _run_fails(["convert", "refdavis", root, "--split", "val"], tmp_path / "o", "Davis17_annot1.txt", "line 3", "second expression")


def test_expression_names_unknown_object(mevis, tmp_path):
    root, meta_p, _, meta, _ = mevis
    vid = sorted(meta["videos"])[0]
    meta["videos"][vid]["expressions"]["0"]["anno_id"] = [99999]
    meta_p.write_text(json.dumps(meta))
    _run_fails(["convert", "mevis", root], tmp_path / "o", f"{vid}/0", "anno_id 99999", "unknown object")


def test_expression_names_unknown_object_davis(example_root, tmp_path):
    root = tmp_path / "davis"
    shutil.copytree(example_root, root)
    p = root / "davis_text_annotations" / "Davis17_annot1_full_video.txt"
    p.write_text(p.read_text() + 'judo 7 "the referee who is not annotated"\n')
    _run_fails(["convert", "refdavis", root, "--split", "val"], tmp_path / "o", "Davis17_annot1_full_video.txt", "line 3", "obj_id 7")


def test_expression_names_unknown_object_refytvos(tmp_path):
    root = make_refytvos(tmp_path / "r", num_videos=2)
    p = root / "meta_expressions" / "train" / "meta_expressions.json"
    meta = json.loads(p.read_text())
    vid = sorted(meta["videos"])[0]
    meta["videos"][vid]["expressions"]["1"]["obj_id"] = "9"
    p.write_text(json.dumps(meta))
    _run_fails(["convert", "refytvos", root, "--split", "train"], tmp_path / "o", f"{vid}/1", "obj_id 9")


def test_non_utf8_text(mevis, example_root, tmp_path):
    root, meta_p, *_ = mevis
    meta_p.write_bytes(meta_p.read_bytes().replace(b"the purple giraffe", "the pürple giraffe".encode("latin-1"), 1))
    _run_fails(["convert", "mevis", root], tmp_path / "o", "meta_expressions.json", "not valid UTF-8 at byte")
    droot = tmp_path / "davis"
    shutil.copytree(example_root, droot)
    p = droot / "davis_text_annotations" / "Davis17_annot1.txt"
    p.write_bytes(p.read_bytes() + 'judo 2 "café"\n'.encode("latin-1"))
    _run_fails(["convert", "refdavis", droot, "--split", "val"], tmp_path / "o", "Davis17_annot1.txt", "line 3", "not valid utf-8")


def test_refytvos_annotation_png_size(tmp_path):
    root = make_refytvos(tmp_path / "r", num_videos=2)
    vid = sorted(p.name for p in (root / "train" / "Annotations").iterdir())[0]
    png = sorted((root / "train" / "Annotations" / vid).iterdir())[1]
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="P").save(png)
    _run_fails(["convert", "refytvos", root, "--split", "train", "--workers", "2"], tmp_path / "o", png.name, vid, "differs from the frame")


def test_refdavis_malformed_line(example_root, tmp_path):
    root = tmp_path / "davis"
    shutil.copytree(example_root, root)
    p = root / "davis_text_annotations" / "Davis17_annot2.txt"
    p.write_bytes(p.read_bytes() + b"judo two missing quotes\n")
    _run_fails(["convert", "refdavis", root, "--split", "val"], tmp_path / "o", "Davis17_annot2.txt", "line 3", "malformed line")


def test_existing_output_is_not_clobbered(mevis, tmp_path):
    root = mevis[0]
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    res = runner.invoke(app, ["convert", "mevis", str(root), "--out", str(out), "--quiet"])
    assert res.exit_code == 2 and "exists and is not an rvoskit dataset" in res.output  # --overwrite would not help
    res = runner.invoke(app, ["convert", "mevis", str(root), "--out", str(out), "--quiet", "--overwrite"])
    assert res.exit_code == 2 and "--overwrite only replaces an rvoskit dataset" in res.output
    assert (out / "keep.txt").read_text() == "precious"


def test_davis_void_label_only_frames(tmp_path):
    root = make_refdavis(tmp_path / "d", num_videos=2)
    seq = "classic-car"
    png = sorted((root / "Annotations" / "480p" / seq).iterdir())[0]
    arr = np.asarray(Image.open(png)).copy()
    arr[:] = 255
    im = Image.fromarray(arr, mode="P")
    im.putpalette(Image.open(png).getpalette())
    im.save(png)
    res = runner.invoke(app, ["convert", "refdavis", str(root), "--split", "train", "--out", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 0, res.output
