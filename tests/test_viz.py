"""rvoskit.viz on the real judo fixtures: DAVIS-2017 judo frames (Cutie examples), OSVOS result masks as
the ground truth, RVOS (unsupervised) result masks as candidate tracks and predictions."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import quote, unquote

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter, open_dataset, rle
from rvoskit.format.predictions import read_predictions, write_predictions
from rvoskit.format.trackstore import TrackStore
from rvoskit.viz import (
    build_report,
    dataset_scene,
    draw,
    frame_j,
    predictions_scene,
    render_dataset,
    render_predictions,
    render_tracks,
    sample_frames,
    scene_sheet,
    tracks_scene,
)

DATA = Path(__file__).parent / "data"
FRAMES = DATA / "davis17_judo_frames_cutie" / "JPEGImages" / "judo"
OSVOS = DATA / "davis17_eval_sample_results" / "semi-supervised" / "osvos" / "judo"
RVOS = DATA / "davis17_eval_sample_results" / "unsupervised" / "rvos" / "judo"
BEDROOM = DATA / "sam2_bedroom" / "JPEGImages" / "bedroom"
H, W = 480, 854
RVOS_TRACK_IDS = (1, 2, 3, 4)  # rvos palette ids used as candidate tracks 0..3


def _palette_stack(folder: Path, names: list[str]) -> np.ndarray:
    return np.stack([np.array(Image.open(folder / f"{n}.png")) for n in names])


def _mask_rows(video_id: str, key: str, ids_masks, **extra) -> list[dict]:
    rows = []
    for k, masks in ids_masks:
        counts = rle.encode_batch(masks.astype(np.uint8))
        area, bbox = rle.area_bbox(counts, H, W)
        rows += [
            dict(video_id=video_id, **{key: k}, frame_idx=t, height=H, width=W, rle=counts[t], area=int(area[t]), bbox=list(bbox[t]), **extra)
            for t in range(len(counts))
        ]
    return rows


def _write_dataset(out: Path, names: list[str], gt: np.ndarray, frame_root: Path, frame_files: list[str], video_id="judo") -> Path:
    with DatasetWriter(out, dataset="refdavis", split="val", frame_root=frame_root) as w:
        w.add_video(dict(video_id=video_id, split="val", num_frames=len(names), height=H, width=W, frames=names, frame_files=frame_files))
        w.add_objects([dict(video_id=video_id, obj_id=o, anno_id=None, category="person") for o in (1, 2)])
        w.add_expressions([
            dict(video_id=video_id, exp_id="0", exp_index=0, text="the judoka on the right", obj_ids=[1], anno_ids=None, annotator=1, kind="first_frame"),
            dict(video_id=video_id, exp_id="1", exp_index=1, text="the judoka on the left", obj_ids=[2], anno_ids=None, annotator=1, kind="full_video"),
            dict(video_id=video_id, exp_id="2", exp_index=2, text="two people fighting, café über", obj_ids=[1, 2], anno_ids=None, annotator=2, kind="full_video"),
        ])
        w.add_masks(video_id, _mask_rows(video_id, "obj_id", [(o, gt == o) for o in (1, 2)]))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("viz")
    names = sorted(p.stem for p in FRAMES.glob("*.jpg"))
    gt = _palette_stack(OSVOS, names)  # 16 frames, ids {0, 1, 2}
    rvos = _palette_stack(RVOS, names)  # ids 0..20
    ds = _write_dataset(tmp / "ds", names, gt, FRAMES.parent, [f"judo/{n}.jpg" for n in names])
    store = TrackStore(tmp / "tracks", create=True, meta={"fixture": "rvos"})
    rows = _mask_rows(
        "judo", "track_id", [(k, rvos == o) for k, o in enumerate(RVOS_TRACK_IDS)],
        prompt_kind="grid", prompt_frame_idx=0, expression_id=None, obj_id=None, stability_score=0.95, predicted_iou=0.9,
    )
    n = len(RVOS_TRACK_IDS)
    store.write_video("judo", rows, np.zeros((n, len(names), 256), np.float32), np.arange(n, dtype=np.int32))
    preds = {"0": rvos == 1, "1": rvos == 3, "2": gt > 0}  # a partly right, a wrong and a perfect prediction
    prow = []
    for exp_id, m in preds.items():
        counts = rle.encode_batch(m.astype(np.uint8))
        area, _ = rle.area_bbox(counts, H, W)
        prow += [dict(expression_id=f"judo/{exp_id}", video_id="judo", exp_id=exp_id, frame_idx=t, height=H, width=W,
                      rle=counts[t], area=int(area[t]), score=None) for t in range(len(names))]
    write_predictions(tmp / "pred", prow, dataset=ds)
    return dict(tmp=tmp, names=names, gt=gt, rvos=rvos, ds=ds, tracks=tmp / "tracks", pred=tmp / "pred", preds=preds)


def _tile(sheet, r, c):
    x, y, w, h = sheet.cells[(r, c)]
    return sheet.image[y : y + h, x : x + w]


def _small(mask: np.ndarray, tile: np.ndarray) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), (tile.shape[1], tile.shape[0]), interpolation=cv2.INTER_NEAREST)


def _inside_outside(mask_small: np.ndarray):
    k = np.ones((3, 3), np.uint8)
    inner = cv2.erode(mask_small, k).astype(bool)
    far = ~cv2.dilate(mask_small, np.ones((7, 7), np.uint8)).astype(bool)
    return inner, far


def _is(tile: np.ndarray, colour) -> np.ndarray:
    return (tile == np.array(colour, np.uint8)).all(-1)


def _bright(region: np.ndarray) -> int:
    """Pixels clearly lighter than the sheet background (text strokes)."""
    return int((region.astype(int).sum(-1) > 3 * 120).sum())


def test_helpers():
    assert sample_frames(16, 4) == [0, 5, 10, 15]
    assert sample_frames(16, 0) == list(range(16)) and sample_frames(3, 8) == [0, 1, 2]
    assert draw.fit_size(480, 854, 200) == (112, 200)
    assert draw.fit_size(480, 854, 4000) == (480, 854)  # never upscaled
    assert draw.ascii_text("café über") == "cafe uber"
    assert draw.ascii_text("le chat 猫\tnoir") == "le chat ? noir"
    lines = draw.wrap("the judoka on the right wearing a white judogi and a red belt", 120)
    assert len(lines) > 1 and all(draw.text_width(line) <= 120 for line in lines)
    assert draw.wrap("a b c d e f g h i j k l m n o p", 30, max_lines=2)[-1].endswith("...")


def test_dataset_sheet_colours_and_text(world):
    ds = open_dataset(world["ds"])
    sheet = scene_sheet(dataset_scene(ds, "judo"), frames=4, tile_width=200, alpha=1.0)
    sampled = [0, 5, 10, 15]
    th = round(H * 200 / W)
    assert len(sheet.cells) == 4 * 4  # all objects + 3 expressions, 4 frames
    assert all(abs(h - th) <= 1 and w == 200 for (_, _, w, h) in sheet.cells.values())
    assert sheet.image.shape[1] == 2 + 220 + 2 + 4 * (200 + 2)
    red, green = draw.PALETTE[0], draw.PALETTE[1]  # obj 1, obj 2 by rank
    gt = world["gt"]
    for c, t in enumerate(sampled):
        # row 1: expression 0, target obj 1 only
        tile = _tile(sheet, 1, c)
        inner, far = _inside_outside(_small(gt[t] == 1, tile))
        assert _is(tile, red)[inner].mean() > 0.98
        assert _is(tile, red)[far].mean() < 0.005
        assert _is(tile, green).mean() < 0.001  # the other object is not drawn
        # row 3: expression 2, both objects; row 0: every object
        for r in (0, 3):
            tile = _tile(sheet, r, c)
            for o, colour in ((1, red), (2, green)):
                inner, far = _inside_outside(_small(gt[t] == o, tile))
                assert _is(tile, colour)[inner].mean() > 0.98
                assert _is(tile, colour)[far].mean() < 0.005
    # the expression text is written in each label cell, the swatch of the single target beside it
    for r in range(4):
        x, y, w, h = sheet.labels[r]
        assert _bright(sheet.image[y : y + h, x : x + w]) > 80
    x, y, w, h = sheet.labels[1]
    assert _is(sheet.image[y : y + h, x : x + 20], red).sum() >= 80
    # legend band: one swatch per object and its text; its right end is empty background
    _, y, _, h = sheet.legend
    band = sheet.image[y : y + h]
    assert _is(band, red).sum() >= 100 and _is(band, green).sum() >= 100
    assert _bright(band) > 100
    assert _is(band[:, -200:], draw.BACKGROUND).all()
    _, y, _, h = sheet.title
    assert _bright(sheet.image[y : y + h]) > 100


def test_tracks_sheet(world):
    ds, store = open_dataset(world["ds"]), TrackStore(world["tracks"])
    sheet = scene_sheet(tracks_scene(ds, store, "judo"), frames=3, tile_width=240, alpha=1.0)
    sampled = [0, 8, 15]
    assert len(sheet.cells) == (1 + len(RVOS_TRACK_IDS)) * 3
    rvos = world["rvos"]
    for k, o in enumerate(RVOS_TRACK_IDS):
        colour = draw.PALETTE[k]
        x, y, _, h = sheet.labels[k + 1]
        assert _is(sheet.image[y : y + h, x : x + 20], colour).sum() >= 80  # swatch of the track's row
        for c, t in enumerate(sampled):
            tile = _tile(sheet, k + 1, c)
            inner, far = _inside_outside(_small(rvos[t] == o, tile))
            if inner.sum() >= 20:
                assert _is(tile, colour)[inner].mean() > 0.98
            assert _is(tile, colour)[far].mean() < 0.005
            # first row: every track in its colour, nowhere far from that track
            all_tile = _tile(sheet, 0, c)
            assert _is(all_tile, colour)[far].mean() < 0.005
            if inner.sum() >= 20:
                assert _is(all_tile, colour)[inner].sum() > 0


def test_predictions_sheet_tp_fp_fn_and_j(world):
    ds = open_dataset(world["ds"])
    preds, _ = read_predictions(world["pred"])
    scene = predictions_scene(ds, preds, "judo")
    assert [r.expression_id for r in scene.rows] == ["judo/0", "judo/1", "judo/2"]
    gt, pred = world["gt"] == 1, world["preds"]["0"]
    # J from RLEs equals a dense numpy IoU (both-empty frames score 1)
    inter = (gt & pred).sum((1, 2))
    union = (gt | pred).sum((1, 2))
    dense = np.where(union == 0, 1.0, inter / np.maximum(union, 1))

    def counts(m):
        return rle.encode_batch(m.astype(np.uint8))

    j = frame_j(dict(enumerate(counts(pred))), {t: [c] for t, c in enumerate(counts(gt))}, len(gt), H, W)
    np.testing.assert_allclose(j, dense, atol=1e-9)
    assert 0.3 < j.mean() < 0.9
    assert frame_j({}, {}, 3, H, W).tolist() == [1.0, 1.0, 1.0]
    assert f"J = {dense.mean():.3f}" in scene.rows[0].label[1]
    assert "J = 1.000" in scene.rows[2].label[1]  # prediction == union of the targets
    sheet = scene_sheet(scene, frames=4, tile_width=240, alpha=1.0)
    for c, t in enumerate([0, 5, 10, 15]):
        tile = _tile(sheet, 0, c)
        for region, colour in ((gt[t] & pred[t], draw.TP), (pred[t] & ~gt[t], draw.FP), (gt[t] & ~pred[t], draw.FN)):
            inner, far = _inside_outside(_small(region, tile))
            inner[: draw.LINE_HEIGHT + 2, :90] = False  # the J tag
            if inner.sum() >= 20:
                assert _is(tile, colour)[inner].mean() > 0.98
            assert _is(tile, colour)[far].mean() < 0.005
        # the GT outline is white and lies on the ground-truth boundary
        g = _small(gt[t], tile)
        ring = cv2.dilate(g, np.ones((3, 3), np.uint8)) & ~cv2.erode(g, np.ones((3, 3), np.uint8))
        white = _is(tile, draw.GT_OUTLINE)
        white[: draw.LINE_HEIGHT + 2, :90] = False
        assert white.sum() > 50 and ring.astype(bool)[white].mean() > 0.95
        # the J tag is written in the corner
        assert _bright(tile[: draw.LINE_HEIGHT + 2, :40]) > 10
        # the perfect prediction (row 2) has no false positive or false negative pixel
        assert not _is(_tile(sheet, 2, c), draw.FP).any() and not _is(_tile(sheet, 2, c), draw.FN).any()


def test_render_files_clips_and_resume(world):
    out = world["tmp"] / "viz_ds"
    res = render_dataset(world["ds"], out, frames=4, tile_width=200, alpha=1.0, video="gif", video_width=320)
    paths = [f["path"] for f in res.files]
    assert paths == ["judo.png", "judo/0.gif", "judo/1.gif", "judo/2.gif"]
    manifest = json.loads((out / "viz.json").read_text())
    assert manifest["complete"] and [f["path"] for f in manifest["files"]] == paths
    # the PNG on disk is the sheet
    png = cv2.cvtColor(cv2.imread(str(out / "judo.png")), cv2.COLOR_BGR2RGB)
    sheet = scene_sheet(dataset_scene(open_dataset(world["ds"]), "judo"), frames=4, tile_width=200, alpha=1.0)
    np.testing.assert_array_equal(png, sheet.image)
    # every frame in the GIF, the mask colour kept exactly on the object
    gif = Image.open(out / "judo/0.gif")
    assert gif.n_frames == 16 and gif.size[0] == 320
    gif.seek(7)
    frame = np.array(gif.convert("RGB"))[:180]
    inner, far = _inside_outside(_small(world["gt"][7] == 1, frame))
    assert _is(frame, draw.PALETTE[0])[inner].mean() > 0.98 and _is(frame, draw.PALETTE[0])[far].mean() < 0.01
    # a second run with the same options resumes (nothing redrawn); other options need --overwrite
    mtime = (out / "judo.png").stat().st_mtime_ns
    again = render_dataset(world["ds"], out, frames=4, tile_width=200, alpha=1.0, video="gif", video_width=320)
    assert again.skipped == ["judo"] and (out / "judo.png").stat().st_mtime_ns == mtime
    with pytest.raises(RvosError, match="other inputs or options"):
        render_dataset(world["ds"], out, frames=5)
    render_dataset(world["ds"], out, frames=5, expressions=["1"], overwrite=True)
    assert not (out / "judo").exists()
    assert "judo/1" in json.loads((out / "viz.json").read_text())["inputs"]["expressions"]
    with pytest.raises(RvosError, match="not an rvoskit viz folder"):
        render_dataset(world["ds"], world["tracks"], overwrite=True)  # never deletes a foreign folder


def test_render_tracks_mp4_and_predictions(world):
    res = render_tracks(world["tracks"], world["ds"], world["tmp"] / "viz_tr", frames=3, video="mp4", video_width=320)
    assert [f["path"] for f in res.files] == ["judo.png", "judo.mp4"]
    cap = cv2.VideoCapture(str(world["tmp"] / "viz_tr" / "judo.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 16 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320
    res = render_predictions(world["pred"], world["tmp"] / "viz_pr", frames=3, expressions=["judo/0"])
    assert [f["path"] for f in res.files] == ["judo.png"]
    img = cv2.imread(str(world["tmp"] / "viz_pr" / "judo.png"))
    assert img.shape[0] < 300  # one expression row


def test_errors(world, tmp_path):
    with pytest.raises(RvosError, match="unknown video"):
        render_dataset(world["ds"], tmp_path / "a", videos=["nope"])
    with pytest.raises(RvosError, match="no such expression"):
        render_dataset(world["ds"], tmp_path / "b", expressions=["judo/99"])
    with pytest.raises(RvosError, match="gif"):
        render_dataset(world["ds"], tmp_path / "c", video="avi")
    # frames that are not the size videos.parquet gives (real 960x540 bedroom frames under a 854x480 video)
    names = world["names"]
    bed = sorted(p.name for p in BEDROOM.glob("*.jpg"))[: len(names)]
    bad = _write_dataset(tmp_path / "bad", names, world["gt"], BEDROOM.parent, [f"bedroom/{n}" for n in bed])
    with pytest.raises(RvosError, match="540.960") as exc:  # height×width, as everywhere
        render_dataset(bad, tmp_path / "d")
    assert "bedroom" in str(exc.value) and "judo frame 0" in str(exc.value)


def test_report(world, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = tmp_path / "runs"
    labels, evald = runs / "labels", runs / "eval" / "refdavis"
    labels.mkdir(parents=True)
    evald.mkdir(parents=True)
    fig, ax = plt.subplots()
    ax.hist(np.random.default_rng(0).random(50))
    fig.savefig(labels / "miou_hist.png")
    fig.savefig(evald / "jf_hist.png")
    plt.close(fig)
    (labels / "labels.json").write_text(json.dumps({
        "threshold": 0.5, "summary": {"mean_miou": 0.6123}, "plots": {"histogram": {"path": "miou_hist.png", "caption": "mIoU of the best track per object"}},
    }))
    (evald / "summary.json").write_text(json.dumps({"J&F": 0.7421, "J": 0.71, "F": 0.77}))
    (runs / "train").mkdir()
    (runs / "train" / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.9}\n{"epoch": 2, "loss": 0.4567}\n')
    (runs / "train" / "broken.json").write_text("{not json")
    hidden = runs / ".labels.tmp-x"
    hidden.mkdir()
    fig.savefig(hidden / "partial.png")
    viz = tmp_path / "viz"
    render_dataset(world["ds"], viz, frames=3, expressions=["judo/1"], video="gif", video_width=160)
    report = tmp_path / "out" / "report.html"
    res = build_report([runs, viz], report, title="judo run")
    text = report.read_text()
    expected = {p.resolve() for root in (runs, viz) for p in root.rglob("*.png") if not any(part.startswith(".") for part in p.relative_to(root).parts)}
    srcs = {(report.parent / unquote(s)).resolve() for s in re.findall(r'<img src="([^"]+)"', text)}
    assert srcs == expected and len(expected) == 3
    assert {p.resolve() for p in res.images} == expected
    assert "mIoU of the best track per object" in text  # caption from labels.json
    assert "ground truth per expression: contact sheet" in text  # caption from viz.json
    assert "jf hist" in text and "0.7421" in text and "0.4567" in text and "J&amp;F" in text
    assert [p.name for p, _ in res.skipped] == ["broken.json"] and "broken.json" in text
    clips = list(viz.rglob("*.gif"))  # clips are linked
    assert len(clips) == 1 and quote(os.path.relpath(clips[0], report.parent)) in text
    md = build_report([runs], tmp_path / "report.md")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md.out.read_text())
    assert {(md.out.parent / unquote(s)).resolve() for s in links} == {p for p in expected if runs in p.parents}
    emb = build_report([runs], tmp_path / "embedded.html", embed=True).out.read_text()
    datas = re.findall(r'src="data:image/png;base64,([^"]+)"', emb)
    assert len(datas) == 2 and all(np.frombuffer(__import__("base64").b64decode(d)[:8], np.uint8).tolist() == [137, 80, 78, 71, 13, 10, 26, 10] for d in datas)
    with pytest.raises(RvosError, match="html or .md"):
        build_report([runs], tmp_path / "r.pdf")


def test_cli(world, tmp_path):
    from rvoskit.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["viz", "dataset", str(world["ds"]), "--out", str(tmp_path / "v"), "--frames", "3", "--gif", "--video-width", "160", "-e", "judo/2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "v" / "judo.png").is_file() and Image.open(tmp_path / "v" / "judo" / "2.gif").n_frames == 16
    r = runner.invoke(app, ["viz", "tracks", str(world["tracks"]), "-d", str(world["ds"]), "--out", str(tmp_path / "t"), "--video", "nope"])
    assert r.exit_code == 2 and "nope" in r.output
    r = runner.invoke(app, ["viz", "report", str(tmp_path / "v"), "--out", str(tmp_path / "r.md")])
    assert r.exit_code == 0, r.output
    assert "judo.png" in (tmp_path / "r.md").read_text()
    assert runner.invoke(app, ["viz", "predictions", "--help"]).exit_code == 0


def test_no_torch_import():
    import subprocess
    import sys

    code = "import sys, rvoskit.viz, rvoskit.commands.viz; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_many_tracks_legend_names_every_track_of_a_repeated_colour(world, tmp_path):
    """A MeViS-size store (64 tracks): colours repeat after 20, so each swatch names all its tracks."""
    n = 64
    rows = _mask_rows(
        "judo", "track_id", [(k, world["rvos"] == RVOS_TRACK_IDS[k % 4]) for k in range(n)],
        prompt_kind="grid", prompt_frame_idx=0, expression_id=None, obj_id=None, stability_score=0.95, predicted_iou=0.9,
    )
    store = TrackStore(tmp_path / "tracks64", create=True)
    store.write_video("judo", rows, np.zeros((n, len(world["names"]), 256), np.float16), np.arange(n, dtype=np.int32))
    scene = tracks_scene(open_dataset(world["ds"]), store, "judo", max_tracks=24)
    assert len(scene.rows) == 1 + 24 and "40 more tracks" in scene.note and "Colours repeat every 20" in scene.note
    assert scene.legend[0] == (draw.PALETTE[0], "0/20/40/60") and scene.legend[19] == (draw.PALETTE[19], "19/39/59")
    assert len(scene.legend) == len(draw.PALETTE)
    sheet = scene_sheet(scene, frames=2, tile_width=120, alpha=1.0)
    _, y, _, h = sheet.legend
    band = sheet.image[y : y + h]
    assert all(_is(band, c).sum() >= 100 for c in draw.PALETTE)  # every swatch is drawn


def test_predictions_scene_decodes_only_what_it_draws(world):
    ds = open_dataset(world["ds"])
    preds, _ = read_predictions(world["pred"])
    scene = predictions_scene(ds, preds, "judo", {"judo/0"})
    assert [r.expression_id for r in scene.rows] == ["judo/0"]
    assert set(scene.decode(0)) == {("pred", "judo/0"), ("obj", 1)}  # obj 2 is no target of judo/0


def test_legend_names_categories_only_where_the_dataset_has_them(judo_dataset):
    # the Ref-DAVIS example has no davis_semantics.json: categories are null (NaN in pandas), never "nan"
    from rvoskit.format import open_dataset
    from rvoskit.viz.render import dataset_scene

    scene = dataset_scene(open_dataset(judo_dataset), "judo")
    assert [text for _, text in scene.legend] == ["obj 1", "obj 2"]
