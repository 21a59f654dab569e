"""``rvoskit corrupt`` on a whole dataset: output layout, policies, reproduction from the draws
table, workers, resume after an interruption and after a real kill, codecs, bad input."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image, JpegImagePlugin
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.corrupt import corrupt_image, make_rng
from rvoskit.corrupt.video import corrupt_dataset, work_dir
from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter, open_dataset, rle, safe_name
from rvoskit.format.validate import validate_dataset

ic = pytest.importorskip("imagecorruptions")

DATA = Path(__file__).resolve().parent / "data"
VIDEOS = [  # (video_id, frame folder relative to tests/data, frames, (H, W))
    ("bedroom", "sam2_bedroom/JPEGImages/bedroom", ["00000", "00001"], (540, 960)),
    ("judo", "davis17_judo_frames_cutie/JPEGImages/judo", ["00000", "00001", "00002"], (480, 854)),
    ("../judo late", "davis17_judo_frames_cutie/JPEGImages/judo", ["00014"], (480, 854)),  # an id that must be encoded
]


def _write_dataset(out: Path, videos=VIDEOS, frame_root: Path = DATA) -> Path:
    """A small common-format dataset over the real frames (one real mask on judo frame 0)."""
    mask = np.array(Image.open(DATA / "davis17_judo_frames_cutie/demo_masks/judo/00000.png")) == 1
    counts = rle.encode(mask)
    area, bbox = rle.area_bbox([counts], *mask.shape)
    with DatasetWriter(out, dataset="refdavis", split="val", frame_root=frame_root) as w:
        for vid, folder, frames, (H, W) in videos:
            files = [f"{folder}/{f}.jpg" for f in frames]
            w.add_video({"video_id": vid, "split": "val", "num_frames": len(frames), "height": H, "width": W, "frames": frames, "frame_files": files})
            w.add_objects([{"video_id": vid, "obj_id": 1, "anno_id": None, "category": None}])
            w.add_expressions([{"video_id": vid, "exp_id": "0", "exp_index": 0, "text": f"the person in {vid}", "obj_ids": [1]}])
            if vid == "judo":
                row = {"video_id": vid, "obj_id": 1, "frame_idx": 0, "height": H, "width": W, "rle": counts, "area": int(area[0]), "bbox": [float(b) for b in bbox[0]]}
                w.add_masks(vid, [row])
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("corrupt-in") / "refdavis-val")


@pytest.fixture(scope="module")
def mb_run(dataset, tmp_path_factory) -> Path:
    """motion_blur severity 5, per_frame angles, generator RNG, one process."""
    return corrupt_dataset(dataset, tmp_path_factory.mktemp("mb") / "mb5", corruption="motion_blur", severity=5, seed=3)


def _frames(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted((path / "frames").rglob("*")) if p.is_file()}


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_output_is_a_valid_derived_dataset(dataset, mb_run):
    assert validate_dataset(mb_run) == []
    src, out = open_dataset(dataset), open_dataset(mb_run)
    assert out.manifest["frame_root"] == "frames" and out.frame_root == mb_run / "frames"
    c = out.manifest["corruption"]
    assert (c["type"], c["severity"], c["seed"], c["angle_policy"], c["rng"], c["format"]) == ("motion_blur", 5, 3, "per_frame", "generator", "png")
    assert out.manifest["counts"] == src.manifest["counts"]
    assert out.manifest["derived_from"]["path"] == str(dataset.resolve())
    # annotations: the input's tables, hard-linked; videos rewritten with the new frame files
    for name in ("objects.parquet", "expressions.parquet", "masks.parquet"):
        assert os.stat(mb_run / name).st_ino == os.stat(dataset / name).st_ino
    pd.testing.assert_frame_equal(out.masks(), src.masks())
    files = dict(zip(out.videos["video_id"], out.videos["frame_files"]))
    assert list(files["judo"]) == ["judo/00000.png", "judo/00001.png", "judo/00002.png"]
    (escaped,) = files["../judo late"]
    assert escaped == f"{safe_name('../judo late')}/00014.png" and escaped.count("/") == 1 and not escaped.startswith(".")
    assert all((mb_run / "frames" / f).is_file() for fs in files.values() for f in fs)
    assert not work_dir(mb_run).exists()
    for vid, fs in files.items():  # frames keep their size (no resize, as in the reference)
        for t in range(len(fs)):
            assert out.read_frame(vid, t).shape == src.read_frame(vid, t).shape


def test_every_frame_reproduces_from_the_draws_table(dataset, mb_run, monkeypatch):
    """Each frame equals the reference's motion_blur fed the recorded angle, and rvoskit's own
    corrupt_image with the recorded seed."""
    src, out = open_dataset(dataset), open_dataset(mb_run)
    draws = pd.read_parquet(mb_run / "corruption.parquet")
    assert len(draws) == 6 and draws["angle"].between(-45, 45).all() and draws["angle"].nunique() == 6
    for row in draws.itertuples():
        assert json.loads(row.params) == {"angle": row.angle}
        x = src.read_frame(row.video_id, row.frame_idx)
        y = out.read_frame(row.video_id, row.frame_idx)
        monkeypatch.setattr(np.random, "uniform", lambda low, high, angle=row.angle: angle)
        np.testing.assert_array_equal(y, ic.corrupt(x, 5, "motion_blur"))
        monkeypatch.undo()
        again, params = corrupt_image(x, "motion_blur", 5, make_rng("generator", int(row.seed)))
        assert params["angle"] == row.angle
        np.testing.assert_array_equal(y, again)


def test_per_video_angle_policy(dataset, tmp_path):
    out = corrupt_dataset(dataset, tmp_path / "mbv", corruption="motion_blur", severity=2, seed=3, angle_policy="per_video")
    draws = pd.read_parquet(out / "corruption.parquet")
    per_video = draws.groupby("video_id")["angle"].nunique()
    assert (per_video == 1).all()
    assert draws.groupby("video_id")["angle"].first().nunique() == 3
    for row in draws.itertuples():  # the recorded video seed draws the angle
        params = json.loads(row.params)
        assert params["angle_from"] == "video"
        assert make_rng("generator", params["video_seed"]).uniform(-45, 45) == row.angle


def _documented_check() -> str:
    """The reference-check script of docs/corrupt.md (the first python block of its section)."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "corrupt.md").read_text(encoding="utf-8")
    section = doc.split("## Checking a run against the reference", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize(
    "corruption, policy",
    [("gaussian_noise", "per_frame"), ("motion_blur", "per_frame"), ("motion_blur", "per_video"), ("impulse_noise", "per_frame")],
)
def test_documented_reference_check(dataset, tmp_path, monkeypatch, capsys, corruption, policy):
    """docs/corrupt.md's script, given only the output directory of a --rng legacy run, finds every
    frame equal to np.random.seed(recorded seed) + imagecorruptions.corrupt, and fails on a changed pixel."""
    out = corrupt_dataset(dataset, tmp_path / "o", corruption=corruption, severity=4, seed=5, rng="legacy", angle_policy=policy)
    script = tmp_path / "check_corrupt.py"
    script.write_text(_documented_check(), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", [str(script), str(out)])
    runpy.run_path(str(script), run_name="__main__")
    assert f"6 frames equal imagecorruptions.corrupt(frame, 4, {corruption!r})" in capsys.readouterr().out
    frame = out / "frames" / "judo" / "00001.png"
    img = cv2.imread(str(frame))
    img[7, 9, 1] ^= 1
    cv2.imwrite(str(frame), img)
    with pytest.raises(AssertionError, match="judo frame 1 differs"):
        runpy.run_path(str(script), run_name="__main__")


def test_gaussian_noise_legacy_rng_is_the_reference_frame_by_frame(dataset, tmp_path):
    """--rng legacy: np.random.seed(recorded seed) + imagecorruptions.corrupt gives every output
    frame; the noise is fresh every frame (residuals of successive frames are uncorrelated)."""
    out = corrupt_dataset(dataset, tmp_path / "gn", corruption="gaussian_noise", severity=5, seed=9, rng="legacy")
    src, dst = open_dataset(dataset), open_dataset(out)
    draws = pd.read_parquet(out / "corruption.parquet")
    assert draws["seed"].max() < 2**32 and draws["seed"].nunique() == len(draws)
    for row in draws.itertuples():
        x = src.read_frame(row.video_id, row.frame_idx)
        np.random.seed(int(row.seed))
        np.testing.assert_array_equal(dst.read_frame(row.video_id, row.frame_idx), ic.corrupt(x, 5, "gaussian_noise"))
    r0, r1 = (dst.read_frame("judo", t).astype(float) - src.read_frame("judo", t) for t in (0, 1))
    assert np.corrcoef(r0.ravel(), r1.ravel())[0, 1] < 0.05 < r0.std() / 255


def test_workers_give_identical_output(dataset, mb_run, tmp_path):
    out = corrupt_dataset(dataset, tmp_path / "mb5-j2", corruption="motion_blur", severity=5, seed=3, workers=2)
    assert _frames(out) == _frames(mb_run)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "corruption.parquet"), pd.read_parquet(mb_run / "corruption.parquet"))


def test_interrupted_run_resumes_to_identical_output(dataset, mb_run, tmp_path):
    out = tmp_path / "mb5"

    def stop_after_two(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        corrupt_dataset(dataset, out, corruption="motion_blur", severity=5, seed=3, progress=stop_after_two)
    assert not out.exists()
    work = work_dir(out)
    assert len((work / "draws.jsonl").read_text().splitlines()) == 2
    with open(work / "draws.jsonl", "a") as f:  # a record cut by a kill
        f.write('{"video_id": "judo", "frame_')
    seen = []
    corrupt_dataset(dataset, out, corruption="motion_blur", severity=5, seed=3, progress=lambda d, t: seen.append(d))
    assert seen[0] == 2 and seen[-1] == 6
    assert _frames(out) == _frames(mb_run)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "corruption.parquet"), pd.read_parquet(mb_run / "corruption.parquet"))
    assert not work.exists()


def test_killed_cli_run_resumes(dataset, mb_run, tmp_path):
    """SIGKILL the real command after its first frame; the same command finishes the job identically."""
    out = tmp_path / "mb5"
    cmd = [sys.executable, "-m", "rvoskit.cli", "corrupt", str(dataset), "-t", "motion_blur", "-s", "5", "--seed", "3", "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    draws = work_dir(out) / "draws.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if draws.is_file() and draws.read_text().count("\n") >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not out.exists() and work_dir(out).exists()
    assert subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    assert _frames(out) == _frames(mb_run)


def test_other_options_on_a_partial_run(dataset, tmp_path):
    out = tmp_path / "x"

    def stop(done, total):
        if done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        corrupt_dataset(dataset, out, corruption="contrast", severity=2, progress=stop)
    with pytest.raises(RvosError, match="partial run with other options"):
        corrupt_dataset(dataset, out, corruption="contrast", severity=3)
    corrupt_dataset(dataset, out, corruption="contrast", severity=3, overwrite=True)
    assert open_dataset(out).manifest["corruption"]["severity"] == 3
    with pytest.raises(RvosError, match="output exists"):
        corrupt_dataset(dataset, out, corruption="contrast", severity=3)


def test_jpeg_is_444_and_keeps_the_noise(dataset, tmp_path):
    """JPEG output uses 4:4:4 chroma: the measured noise is close to the lossless PNG's, while the
    same frame written with the common 4:2:0 default loses a large part of it."""
    png = corrupt_dataset(dataset, tmp_path / "png", corruption="gaussian_noise", severity=5, seed=1)
    jpg = corrupt_dataset(dataset, tmp_path / "jpg", corruption="gaussian_noise", severity=5, seed=1, image_format="jpeg", quality=95)
    f = jpg / "frames" / "judo" / "00001.jpg"
    assert JpegImagePlugin.get_sampling(Image.open(f)) == 0  # 4:4:4
    assert open_dataset(jpg).manifest["corruption"]["chroma"] == "4:4:4"
    clean = open_dataset(dataset).read_frame("judo", 1).astype(float)
    y_png = _rgb(png / "frames" / "judo" / "00001.png")
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(y_png, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])  # OpenCV default: 4:2:0
    y_420 = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    sd_png, sd_444, sd_420 = ((y - clean).std() for y in (y_png, _rgb(f), y_420))
    assert sd_444 > 0.95 * sd_png and sd_420 < 0.85 * sd_png


def test_cli_errors(dataset, tmp_path):
    runner = CliRunner()
    cases = [
        (["-t", "fog_heavy", "-s", "1"], "unknown corruption type 'fog_heavy'"),
        (["-t", "fog", "-s", "7"], "Invalid value"),  # the option's range (severity 1..5)
        (["-t", "fog", "-s", "2", "--angle-policy", "per_video"], "applies to motion_blur only"),
        (["-t", "motion_blur", "-s", "2", "--angle-policy", "sometimes"], "unknown angle policy"),
        (["-t", "fog", "-s", "2", "--quality", "90"], "--quality applies to jpeg only"),
        (["-t", "fog", "-s", "2", "--format", "jpeg", "--quality", "0"], "Invalid value"),  # the option's range 1..100
        (["-t", "fog", "-s", "2", "--format", "webp"], "unknown image format"),
    ]
    for args, message in cases:
        r = runner.invoke(app, ["corrupt", str(dataset), "-o", str(tmp_path / "o"), *args])
        assert r.exit_code == 2 and message in r.output, (args, r.output)
        assert not (tmp_path / "o").exists() and not work_dir(tmp_path / "o").exists()


def test_unreadable_frame_names_the_file_and_frame(tmp_path):
    frames = tmp_path / "frames" / "v"
    frames.mkdir(parents=True)
    (frames / "00000.jpg").write_bytes((DATA / "sam2_bedroom/JPEGImages/bedroom/00000.jpg").read_bytes())
    (frames / "00001.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    ds = _write_dataset(tmp_path / "ds", videos=[("v", "v", ["00000", "00001"], (540, 960))], frame_root=tmp_path / "frames")
    r = CliRunner().invoke(app, ["corrupt", str(ds), "-t", "contrast", "-s", "1", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "00001.jpg" in r.output and "v frame 1" in r.output and "unreadable frame" in r.output
    assert not (tmp_path / "o").exists()
    # after the frame is fixed, the same command resumes and finishes
    (frames / "00001.jpg").write_bytes((DATA / "sam2_bedroom/JPEGImages/bedroom/00001.jpg").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = CliRunner().invoke(app, ["corrupt", str(ds), "-t", "contrast", "-s", "1", "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "resuming: 1 of 2" in r.output
