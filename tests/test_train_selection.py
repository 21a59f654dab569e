"""rvoskit train: learnability on planted data, resume == uninterrupted, checkpoints, config, errors, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.errors import RvosError
from rvoskit.format import open_dataset
from rvoskit.format import rle as rlemod
from rvoskit.format.predictions import read_predictions
from rvoskit.selection.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    model_from_checkpoint,
)
from rvoskit.selection.config import DEFAULTS, load_config
from rvoskit.selection.data import (
    TokenCache,
    batch_indices,
    labelled_samples,
    make_batch,
    open_stores,
)
from rvoskit.selection.scoring import predict
from rvoskit.selection.synthetic import make_synthetic
from rvoskit.selection.text import text_features
from rvoskit.selection.training import forward_batch, train

torch.set_num_threads(1)

TINY = [
    "model.width=32",
    "model.motion_hidden=32",
    "model.heads=4",
    "model.groups=4",
    "model.groups_layer=4",
    "model.negatives=8",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    return {
        "train": make_synthetic(root / "train", videos=32, frames=(10, 20), expressions=3, strength=4, seed=0),
        "valid": make_synthetic(root / "valid", videos=8, frames=(10, 20), expressions=3, strength=4, seed=1, video_prefix="w"),
        "cache": str(root / "text_cache"),
        "root": root,
    }


def _cfg(world, *overrides, valid=True):
    cfg = load_config(None, TINY + [f"text.cache_dir={world['cache']}", *overrides])
    for split in ("train", "valid") if valid else ("train",):
        w = world[split]
        cfg["data"][split].update(dataset=w["dataset"], tracks=w["tracks"], labels=w["labels"])
    return cfg


def test_learns_the_planted_word_on_held_out_videos(world, tmp_path):
    # 96 training expressions, batches of 4, 8 epochs = 192 steps; dropout off to keep it short.
    cfg = _cfg(world, "optim.lr=2e-3", "train.batch_size=4", "train.epochs=8", "model.dropout=0", "model.attn_dropout=0")
    res = train(cfg, tmp_path / "run", log=lambda m: None)
    first, last = res["metrics"][0], res["metrics"][-1]
    negatives = (last["tn"] + last["fp"]) / (last["tp"] + last["fp"] + last["fn"] + last["tn"])
    assert negatives < 0.8  # "select nothing" would score this accuracy, far below the bar
    assert last["accuracy"] >= 0.95 and last["f1"] >= 0.9, last
    assert last["valid_loss"] < 0.5 * first["valid_loss"]
    # metrics per epoch in CSV / JSON, curves as PNG
    run = tmp_path / "run"
    csv = pd.read_csv(run / "metrics.csv")
    assert list(csv["epoch"]) == list(range(1, 9))
    assert {"train_loss", "valid_loss", "accuracy", "precision", "recall", "f1", "lr"} <= set(csv.columns)
    assert json.loads((run / "metrics.json").read_text())[-1]["f1"] == pytest.approx(last["f1"])
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # by default the last and the best checkpoint are kept (issue 10)
    best = min(res["metrics"], key=lambda m: (m["valid_loss"], m["epoch"]))["epoch"]
    assert res["best"][0] == best and [e for e, _ in list_checkpoints(run)] == sorted({8, best})
    assert json.loads((run / "run.json").read_text())["best"]["epoch"] == best

    # score the held-out videos with only their ground-truth-object tracks: the selected tracks'
    # merged masks must be the expressions' ground truth
    preds = tmp_path / "preds"
    predict(run, world["valid"]["dataset"], {"gt": world["valid"]["tracks"]["gt"]}, preds, text_cache=world["cache"])
    rows, manifest = read_predictions(preds)
    ds = open_dataset(world["valid"]["dataset"])
    assert len(rows) == int(ds.videos["num_frames"].sum() * 3)
    exact = 0
    for eid, g in rows.groupby("expression_id"):
        gt = ds.expression_masks(eid)
        pred = rlemod.decode_batch(list(g.sort_values("frame_idx")["rle"]), gt.shape[1], gt.shape[2])
        exact += bool(np.array_equal(pred, gt))
    assert exact >= 0.9 * rows["expression_id"].nunique()
    assert manifest["meta"]["selection"] == {"tau": 0.5, "top_k": None}


def test_resume_gives_the_same_result_as_an_uninterrupted_run(world, tmp_path):
    # dropout on: the RNG state must be restored too
    base = ["optim.lr=1e-3", "train.batch_size=8", "model.dropout=0.2"]
    full = train(_cfg(world, *base, "train.epochs=3"), tmp_path / "full", log=lambda m: None)
    train(_cfg(world, *base, "train.epochs=1"), tmp_path / "part", log=lambda m: None)
    logs = []
    part = train(_cfg(world, *base, "train.epochs=3"), tmp_path / "part", resume=True, log=logs.append)
    assert any("resuming" in m for m in logs)
    a = load_checkpoint(tmp_path / "full")
    b = load_checkpoint(tmp_path / "part")
    assert a["epoch"] == b["epoch"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = lambda ms: [{k: v for k, v in m.items() if "second" not in k} for m in ms]
    assert strip(full["metrics"]) == strip(part["metrics"])
    # a resume with another model is refused
    with pytest.raises(RvosError, match="model"):
        train(_cfg(world, *base, "train.epochs=4", "model.layers=1"), tmp_path / "part", resume=True, log=lambda m: None)


def test_checkpoint_round_trip(world, tmp_path):
    cfg = _cfg(world, "train.epochs=1", valid=False)
    train(cfg, tmp_path / "run", log=lambda m: None)
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "epoch_001.pt")
    assert state["config"] == json.loads(json.dumps(cfg))
    assert state["text"]["dim"] == 384 and state["optimizer"]["state"] and "rng" in state
    model = model_from_checkpoint(state)
    # the reloaded model scores exactly as a model given the same weights
    w = world["train"]
    samples = labelled_samples(open_dataset(w["dataset"]), open_stores(w["tracks"]), w["labels"])[:6]
    feats, _ = text_features([s.text for s in samples], cache_dir=world["cache"])
    batch = make_batch(samples, feats, TokenCache(open_stores(w["tracks"])))
    again = type(model).from_config(state["config"]["model"], 384)
    again.load_state_dict(torch.load(state["path"], weights_only=True)["model"])
    with torch.no_grad():
        torch.testing.assert_close(forward_batch(model, batch)[0], forward_batch(again.eval(), batch)[0], rtol=0, atol=0)
    with pytest.raises(RvosError, match="not an rvoskit selection checkpoint"):
        torch.save({"model": {}}, tmp_path / "other.pt")
        load_checkpoint(tmp_path / "other.pt")


def test_batches_group_expressions_by_video(world):
    w = world["train"]
    samples = labelled_samples(open_dataset(w["dataset"]), open_stores(w["tracks"]), w["labels"])
    assert len(samples) == 96 and all(len(s.candidates) == 7 for s in samples)
    assert samples[0].candidates[:4] == (("gt", 0), ("gt", 1), ("gt", 2), ("grid", 0))
    order = batch_indices(samples, 6, group_by_video=True, rng=np.random.default_rng(0))
    assert sorted(i for b in order for i in b) == list(range(96))
    videos_per_batch = [len({samples[i].video_id for i in b}) for b in order]
    assert max(videos_per_batch) <= 3 and np.mean(videos_per_batch) < 2.5
    feats, _ = text_features([s.text for s in samples], cache_dir=world["cache"])
    batch = make_batch([samples[i] for i in order[0]], feats, TokenCache(open_stores(w["tracks"])))
    assert batch.tokens.shape[0] == videos_per_batch[0] and batch.group.shape == (6,)


def test_config_files_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("optim:\n  lr: 1e-4\ntrain:\n  epochs: 3\n")
    (tmp_path / "c.toml").write_text("[optim]\nlr = 2e-4\n[model]\nlayers = 1\n")
    y = load_config(tmp_path / "c.yaml", ["train.batch_size=16", "data.train.tracks.gt=/x"])
    assert (y["optim"]["lr"], y["train"]["epochs"], y["train"]["batch_size"]) == (1e-4, 3, 16)
    assert y["data"]["train"]["tracks"] == {"gt": "/x"}
    assert y["loss"] == DEFAULTS["loss"] and y["optim"]["weight_decay"] == 0.01
    t = load_config(tmp_path / "c.toml", ["optim.lr=3e-4"])
    assert (t["optim"]["lr"], t["model"]["layers"]) == (3e-4, 1)
    with pytest.raises(RvosError, match="unknown config key 'optim.learning_rate'"):
        load_config(None, ["optim.learning_rate=1"])
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(RvosError, match="bad.yaml"):
        load_config(tmp_path / "bad.yaml")


def test_bad_inputs_are_reported(world, tmp_path):
    cfg = _cfg(world, "train.epochs=1", valid=False)
    cfg["data"]["train"]["tracks"] = {"gt": world["train"]["tracks"]["gt"], "gdino": world["train"]["tracks"]["grid"]}
    with pytest.raises(RvosError, match="no pseudo-labels for track source 'gdino'"):
        train(cfg, tmp_path / "a", log=lambda m: None)
    train(_cfg(world, "train.epochs=1", valid=False), tmp_path / "b", log=lambda m: None)
    with pytest.raises(RvosError, match="--resume"):
        train(_cfg(world, "train.epochs=1", valid=False), tmp_path / "b", log=lambda m: None)
    with pytest.raises(RvosError, match="CUDA is not available|cuda"):
        train(_cfg(world, "train.epochs=1", valid=False), tmp_path / "c", device="cuda:0" if not torch.cuda.is_available() else "cuda:99")


def test_train_command(world, tmp_path):
    w = world["train"]
    args = ["train", "--dataset", w["dataset"], "--tracks", f"gt={w['tracks']['gt']}", "--tracks", f"grid={w['tracks']['grid']}"]
    args += ["--labels", w["labels"], "--out", str(tmp_path / "run"), "--epochs", "1", "--text-cache", world["cache"]]
    args += [a for o in TINY + ["data.valid_fraction=0.25"] for a in ("--set", o)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "trainable parameters" in res.output
    assert (tmp_path / "run" / "checkpoints" / "epoch_001.pt").is_file()
    # resume with only --out: the run's config is reused
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "3", "--set", "train.keep_last=2"])
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output
    best = json.loads((tmp_path / "run" / "run.json").read_text())["best"]["epoch"]
    assert [e for e, _ in list_checkpoints(tmp_path / "run")] == sorted({2, 3, best})  # keep_last=2 (+ the best)
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 3
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run2"), "--set", "optim.nope=1"])
    assert res.exit_code == 2 and "unknown config key" in res.output
