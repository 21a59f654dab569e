"""The README's main job: `rvoskit demo` runs every stage on the bundled real example."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.format import open_dataset
from rvoskit.format.predictions import read_predictions
from rvoskit.format.trackstore import open_trackstore


@pytest.mark.slow
def test_demo_runs_every_stage(tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--epochs", "1"])
    assert res.exit_code == 0, res.output
    assert "RANDOM weights" in " ".join(res.output.split())
    stages = json.loads((out / "demo.json").read_text())
    assert [s["stage"] for s in stages] == ["convert", "validate", "info", "tracks generate", "pseudolabel", "corrupt",
                                            "train", "score", "eval", "viz"]
    ds = open_dataset(out / "dataset")
    store = open_trackstore(out / "tracks")
    assert store.done_videos() == ["judo"]
    obj_ptr, track_ids = store.tokens("judo")
    assert obj_ptr.shape[1:] == (16, 256) and len(track_ids) == obj_ptr.shape[0] >= 2  # the two GT tracks at least
    preds, _ = read_predictions(out / "predictions")
    assert len(preds) == len(ds.expressions) * 16  # one mask per expression and frame
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert 0.0 <= summary["J&F"] <= 1.0
    noisy = open_dataset(out / "dataset-gaussian_noise-5")
    assert noisy.read_frame("judo", 0).shape == (480, 854, 3)
    html = (out / "report.html").read_text()
    assert "histogram.png" in html and ".png" in html
    # the report opens with what ran: the notice, the stage table, the headline numbers (issue 10)
    top = html[: html.index("<h2>")]
    assert "random" in top.lower() and "the masks are meaningless; the files and shapes are real" in top
    assert all(f"<td>{s['stage']}</td>" in top for s in stages) and "Headline numbers" in top
    assert "ref-davis" in top and "No validation split" in top
    assert " ".join(res.output.split()).count("RANDOM") == 1  # the random-weights warning, once
    assert summary["protocol"] == "ref-davis"
    tracks_row = next(s["outputs"] for s in stages if s["stage"] == "tracks generate")
    assert "None" not in tracks_row and f"{len(track_ids)} tracks" in tracks_row
    # an existing demo folder is refused without --overwrite (and left alone)
    again = CliRunner().invoke(app, ["demo", "--out", str(out), "--epochs", "1"])
    assert again.exit_code == 2 and "--overwrite" in " ".join(again.output.split())
    assert json.loads((out / "demo.json").read_text()) == stages
