"""Joint training on several data sets, resume after kill -9, SOLA's zero-shot workflow, and the
train / score checks of issues 10 and 11 (checkpoints, ranges, broken tokens, zero positives)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.errors import RvosError
from rvoskit.format import open_dataset, write_table
from rvoskit.selection.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from rvoskit.selection.config import data_sets, load_config
from rvoskit.selection.data import TokenCache, batch_indices, epoch_pool, labelled_samples, open_stores
from rvoskit.selection.synthetic import make_synthetic, tracks_for_dataset
from rvoskit.selection.training import train

torch.set_num_threads(1)

TINY = ["model.width=32", "model.motion_hidden=32", "model.heads=4", "model.groups=4", "model.groups_layer=4", "model.negatives=8"]
SET = [a for o in TINY for a in ("--set", o)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("joint")
    # two training sets with different track sources and the SAME video / expression ids ("v0000/0"):
    # only the set name tells their expressions apart
    a = make_synthetic(root / "a", videos=6, tracks={"gt": 3, "grid": 4}, frames=(10, 16), expressions=3, strength=4, seed=0)
    b = make_synthetic(root / "b", videos=4, tracks={"oracle": 2, "sam": 3}, frames=(8, 12), expressions=2, strength=4, seed=1)
    third = make_synthetic(root / "c", videos=3, tracks={"grid": 4}, frames=(8, 12), expressions=2, strength=4, seed=2, video_prefix="w")
    return {"a": a, "b": b, "c": third, "root": root, "cache": str(root / "text_cache")}


def _spec(w, name, weight=None):
    tracks = "+".join(f"{k}={v}" for k, v in w["tracks"].items())
    return f"{name}:dataset={w['dataset']},tracks={tracks},labels={w['labels']}" + (f",weight={weight}" if weight is not None else "")


def _joint_args(world, out, epochs):
    return ["train", "--train", _spec(world["a"], "alpha"), "--train", _spec(world["b"], "beta", 0.5),
            "--valid", _spec(world["a"], "alpha_v"), "--valid", _spec(world["b"], "beta_v"),
            "--out", str(out), "--epochs", str(epochs), "--batch-size", "4", "--text-cache", world["cache"], "--device", "cpu",
            "--set", "optim.lr=1e-3", *SET]  # fmt: skip


def test_set_names_key_the_expressions_and_the_sampling_rule(world):
    sa = labelled_samples(open_dataset(world["a"]["dataset"]), open_stores(world["a"]["tracks"]), world["a"]["labels"], "alpha")
    sb = labelled_samples(open_dataset(world["b"]["dataset"]), open_stores(world["b"]["tracks"]), world["b"]["labels"], "beta")
    assert sa[0].expression_id == sb[0].expression_id == "v0000/0" and sa[0].key != sb[0].key
    samples = sa + sb
    assert len({s.key for s in samples}) == len(samples)
    # batches never mix two data sets' "v0000" into one candidate set
    tokens = TokenCache({"alpha": open_stores(world["a"]["tracks"]), "beta": open_stores(world["b"]["tracks"])})
    assert tokens.get("sam", "v0000", "beta")[0].shape[0] == 3 and tokens.get("grid", "v0000", "alpha")[0].shape[0] == 4
    order = batch_indices(samples, 4, rng=np.random.default_rng(0))
    assert sorted(i for b in order for i in b) == list(range(len(samples)))
    # weights: 1 everywhere = every expression once (no draw); beta at 0.5 = half of beta, 2.0 = twice
    assert epoch_pool(samples, {"alpha": 1.0, "beta": 1.0}, np.random.default_rng(0)) is None
    pool = epoch_pool(samples, {"alpha": 1.0, "beta": 0.5}, np.random.default_rng(0))
    assert sum(samples[i].dataset == "alpha" for i in pool) == len(sa) and sum(samples[i].dataset == "beta" for i in pool) == len(sb) // 2
    pool = epoch_pool(samples, {"alpha": 2.0, "beta": 0.0}, np.random.default_rng(0))
    assert len(pool) == 2 * len(sa) and all(samples[i].dataset == "alpha" for i in pool)
    # the config form: named sets, a weight, or the single-set form named after the dataset folder
    cfg = load_config(None, [f"data.train.alpha.dataset={world['a']['dataset']}", "data.train.alpha.weight=0.25"])
    assert data_sets(cfg, "train", check_paths=False)["alpha"]["weight"] == 0.25
    cfg = load_config(None, [f"data.train.dataset={world['a']['dataset']}"])
    assert list(data_sets(cfg, "train", check_paths=False)) == ["dataset_set"]
    with pytest.raises(RvosError, match="weight"):
        data_sets(load_config(None, ["data.train.x.weight=-1"]), "train", check_paths=False)


def test_two_datasets_resume_after_kill_score_and_eval_on_a_third(world, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    res = CliRunner().invoke(app, _joint_args(world, full, 3))
    assert res.exit_code == 0, res.output
    metrics = json.loads((full / "metrics.json").read_text())
    last = metrics[-1]
    # metrics per validation set and overall (the overall counts are the sum of the sets')
    for k in ("tp", "fp", "fn", "tn"):
        assert last[k] == last[f"valid.alpha_v.{k}"] + last[f"valid.beta_v.{k}"]
    assert "valid.beta_v.f1" in pd.read_csv(full / "metrics.csv").columns
    # the checkpoint and run.json record the data sets (names, manifests' checksums, weights)
    run = json.loads((full / "run.json").read_text())
    recs = {(r["role"], r["name"]): r for r in run["datasets"]}
    assert set(recs) == {("train", "alpha"), ("train", "beta"), ("valid", "alpha_v"), ("valid", "beta_v")}
    assert recs[("train", "beta")]["weight"] == 0.5 and len(recs[("train", "alpha")]["manifest_sha256"]) == 64
    assert recs[("train", "alpha")]["manifest_sha256"] != recs[("train", "beta")]["manifest_sha256"]
    state = load_checkpoint(full)
    assert [r["name"] for r in state["datasets"]] == ["alpha", "beta", "alpha_v", "beta_v"]
    # by default only the last and the best checkpoint are kept, and only the last has optimizer state
    kept = [e for e, _ in list_checkpoints(full)]
    assert kept == sorted({3, run["best"]["epoch"]}) and run["last"]["epoch"] == 3
    for e, p in list_checkpoints(full):
        assert ("optimizer" in torch.load(p, weights_only=True)) == (e == 3)

    # the same run killed (SIGKILL) after its first checkpoint, then resumed: identical weights
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-c", "from rvoskit.cli import main; main()", *_joint_args(world, part, 3)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (part / "checkpoints" / "epoch_001.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = [e for e, _ in list_checkpoints(part)]
    assert 1 <= max(done) < 3
    res = CliRunner().invoke(app, ["train", "--out", str(part), "--resume"])
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output
    a, b = load_checkpoint(full), load_checkpoint(part)
    assert a["epoch"] == b["epoch"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert not list(part.rglob(".*.tmp-*"))

    # score and eval on a third data set
    c = world["c"]
    preds = tmp_path / "preds"
    res = CliRunner().invoke(app, ["score", c["dataset"], "--checkpoint", str(part / "best"), "--tracks", f"grid={c['tracks']['grid']}",
                                   "--out", str(preds), "--text-cache", world["cache"], "--zero-shot", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    # a dataset the model never saw, but all three are "synthetic train": the same benchmark
    assert "trained on this dataset" not in res.output and "same benchmark" in res.output
    meta = json.loads((preds / "predictions.json").read_text())["meta"]
    assert meta["zero_shot"]["requested"] and len(meta["zero_shot"]["warnings"]) == 4
    assert {r["name"] for r in meta["trained_on"]} == {"alpha", "beta", "alpha_v", "beta_v"}
    res = CliRunner().invoke(app, ["eval", c["dataset"], str(preds), "--out", str(tmp_path / "eval"), "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["protocol"] == "mevis"


def test_zero_shot_workflow(tmp_path):
    """docs/selection.md "Zero-shot": train on MeViS, score Ref-YouTube-VOS valid -> submission zip,
    Ref-DAVIS -> ref-davis protocol, MeViS valid_u -> eval. Generated native data; the track stores
    come from ``tracks_for_dataset`` instead of SAM2 (``rvoskit tracks generate``), everything else
    is the documented commands."""
    from rvoskit.datasets.synthetic import make_mevis, make_refdavis, make_refytvos

    small = dict(num_frames=6, height=32, width=48)
    make_mevis(tmp_path / "raw_mevis", split="train", num_videos=4, seed=0, **small)
    make_mevis(tmp_path / "raw_mevis", split="valid_u", num_videos=2, seed=1, **small)
    make_refytvos(tmp_path / "raw_ytvos", num_videos=1, valid_videos=2, test_videos=1, **small)
    make_refdavis(tmp_path / "raw_davis", num_videos=2, **small)
    d = tmp_path / "data"

    def run(*args):
        res = CliRunner().invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, (args, res.output)
        return res.output

    run("convert", "mevis", tmp_path / "raw_mevis", "--split", "train", "--out", d / "mevis_train", "-q")
    run("convert", "mevis", tmp_path / "raw_mevis", "--split", "valid_u", "--out", d / "mevis_valid_u", "-q")
    run("convert", "refytvos", tmp_path / "raw_ytvos", "--split", "valid", "--out", d / "ytvos_valid", "-q")
    run("convert", "refdavis", tmp_path / "raw_davis", "--split", "val", "--out", d / "davis_val", "-q")
    tr = {name: tracks_for_dataset(d / name, tmp_path / "tracks" / name, seed=i) for i, name in enumerate(["mevis_train", "mevis_valid_u", "ytvos_valid", "davis_val"])}
    assert set(tr["mevis_train"]) == {"gt", "grid"} and set(tr["ytvos_valid"]) == {"grid"}
    cache = ["--text-cache", tmp_path / "text"]
    # 1. train on MeViS
    run("pseudolabel", d / "mevis_train", "--tracks", f"gt={tr['mevis_train']['gt']}", "--tracks", f"grid={tr['mevis_train']['grid']}", "--out", tmp_path / "labels", "-q")
    run("train", d / "mevis_train", "--tracks", f"gt={tr['mevis_train']['gt']}", "--tracks", f"grid={tr['mevis_train']['grid']}",
        "--labels", tmp_path / "labels", "--out", tmp_path / "run", "--epochs", "2", *SET, *cache, "-q")  # fmt: skip
    # 2. Ref-YouTube-VOS valid, zero-shot -> submission zip
    out = run("score", d / "ytvos_valid", "--checkpoint", tmp_path / "run", "--tracks", f"grid={tr['ytvos_valid']['grid']}", "--out", tmp_path / "p_ytvos", "--zero-shot", *cache)
    assert "warning" not in out
    run("export", d / "ytvos_valid", tmp_path / "p_ytvos", "--to", "refytvos-submission", "--out", tmp_path / "ytvos.zip", "-q")
    with zipfile.ZipFile(tmp_path / "ytvos.zip") as zf:
        pngs = [n for n in zf.namelist() if n.endswith(".png")]
    ds = open_dataset(d / "ytvos_valid")
    assert len(pngs) == sum(int(ds.video(v)["num_frames"]) * int((ds.expressions["video_id"] == v).sum()) for v in ds.videos["video_id"])
    # 3. Ref-DAVIS, zero-shot -> the ref-davis protocol
    run("score", d / "davis_val", "--checkpoint", tmp_path / "run", "--tracks", f"grid={tr['davis_val']['grid']}", "--out", tmp_path / "p_davis", "--zero-shot", *cache)
    run("eval", d / "davis_val", tmp_path / "p_davis", "--protocol", "ref-davis", "--out", tmp_path / "e_davis", "-q")
    assert json.loads((tmp_path / "e_davis" / "summary.json").read_text())["protocol"] == "ref-davis"
    # 4. MeViS valid_u (in-domain: --zero-shot would say so) -> eval
    out = run("score", d / "mevis_valid_u", "--checkpoint", tmp_path / "run", "--tracks", f"grid={tr['mevis_valid_u']['grid']}", "--out", tmp_path / "p_mevis", "--zero-shot", *cache)
    assert "same benchmark" in out
    run("eval", d / "mevis_valid_u", tmp_path / "p_mevis", "--out", tmp_path / "e_mevis", "-q")
    assert json.loads((tmp_path / "e_mevis" / "summary.json").read_text())["protocol"] == "mevis"
    # scoring the training set itself with --zero-shot says so
    out = run("score", d / "mevis_train", "--checkpoint", tmp_path / "run", "--tracks", f"grid={tr['mevis_train']['grid']}", "--out", tmp_path / "p_train", "--zero-shot", *cache)
    assert "trained on this dataset" in out and "'mevis_train'" in out


def test_zero_positive_labels_are_refused(world, tmp_path):
    w = world["a"]
    table = pd.read_parquet(Path(w["labels"]) / "labels.parquet")
    (tmp_path / "neg").mkdir()
    write_table(tmp_path / "neg" / "labels.parquet", "labels", table.assign(label=False))
    args = ["train", w["dataset"], "--tracks", f"gt={w['tracks']['gt']}", "--labels", str(tmp_path / "neg"), "--out", str(tmp_path / "run"),
            "--epochs", "1", "--text-cache", world["cache"], *SET]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "no positive label" in res.output and "--allow-no-positives" in res.output
    assert not (tmp_path / "run" / "checkpoints").exists()
    res = CliRunner().invoke(app, args + ["--allow-no-positives"])
    assert res.exit_code == 0, res.output
    assert "warning" in res.output and "no positive label" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "optim.lr=-1"], "'optim.lr' must be > 0"),
        (["--set", "optim.lr=nan"], "'optim.lr' must be > 0"),
        (["--set", "train.threshold=1.5"], "'train.threshold' must be in [0, 1]"),
        (["--set", "model.dropout=1"], "'model.dropout' must be in [0, 1)"),
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "-2"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--keep-checkpoints", "-1"], "--keep-checkpoints"),
    ],
)
def test_train_option_ranges(world, tmp_path, args, message):
    w = world["a"]
    res = CliRunner().invoke(app, ["train", w["dataset"], "--tracks", f"gt={w['tracks']['gt']}", "--labels", w["labels"], "--out", str(tmp_path / "r"), *args])
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args, message",
    [(["--tau", "1.5"], "--tau"), (["--tau", "-1"], "--tau"), (["--tau", "nan"], "--tau"), (["--batch-size", "0"], "--batch-size"), (["--top-k", "0"], "--top-k")],
)
def test_score_option_ranges(world, tmp_path, args, message):
    c = world["c"]
    res = CliRunner().invoke(app, ["score", c["dataset"], "--checkpoint", str(tmp_path / "nothing"), "--tracks", c["tracks"]["grid"], "--out", str(tmp_path / "p"), *args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


@pytest.fixture(scope="module")
def small_run(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "run"
    cfg = load_config(None, TINY + [f"text.cache_dir={world['cache']}", "train.epochs=1"])
    cfg["data"]["train"] = {"c": {"dataset": world["c"]["dataset"], "tracks": world["c"]["tracks"], "labels": world["c"]["labels"]}}
    train(cfg, out, log=lambda m: None)
    return out


def test_broken_object_tokens_are_one_line_errors(world, small_run, tmp_path):
    import shutil

    from safetensors.numpy import save_file

    c = world["c"]
    store = tmp_path / "grid"
    shutil.copytree(c["tracks"]["grid"], store)
    tok = next((store / "tokens").glob("*.safetensors"))
    good = tok.read_bytes()
    cases = {
        "missing": lambda: tok.unlink(),
        "corrupt": lambda: tok.write_bytes(good[: len(good) // 2]),
        "empty": lambda: tok.write_bytes(b""),
        "no track_id": lambda: save_file({"obj_ptr": np.zeros((4, 8, 256), np.float32)}, str(tok)),
        "wrong length": lambda: save_file({"obj_ptr": np.zeros((4, 3, 256), np.float32), "track_id": np.arange(4, dtype=np.int32)}, str(tok)),
        "wrong width": lambda: save_file({"obj_ptr": np.zeros((4, 99, 128), np.float32), "track_id": np.arange(4, dtype=np.int32)}, str(tok)),
    }
    labels_args = ["--labels", c["labels"], "--out"]
    for name, breaker in cases.items():
        breaker()
        for cmd in (["train", c["dataset"], "--tracks", f"grid={store}", *labels_args, str(tmp_path / f"run_{name}"), "--epochs", "1", *SET, "--text-cache", world["cache"], "-q"],
                    ["score", c["dataset"], "--checkpoint", str(small_run), "--tracks", f"grid={store}", "--out", str(tmp_path / f"p_{name}"), "--text-cache", world["cache"], "-q"]):  # fmt: skip
            res = CliRunner().invoke(app, cmd)
            assert res.exit_code == 2, (name, cmd[0], res.output)
            lines = [line for line in res.output.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error:") and tok.name in lines[0], (name, res.output)
            assert not (tmp_path / f"p_{name}").exists()
        tok.write_bytes(good)


def test_bad_checkpoints_say_what_they_are(tmp_path, world):
    c = world["c"]
    cases = {
        "empty.pt": b"",
        "text.pt": b"hello, not a checkpoint\n",
        "trunc.pt": None,
    }
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    good = tmp_path / "other.pt"
    cases["trunc.pt"] = good.read_bytes()[:200]
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"obj": np.dtype("float32")}, tmp_path / "pickled.pt")  # needs weights_only=False
    expected = {"empty.pt": "empty file", "text.pt": "not a torch checkpoint", "trunc.pt": "truncated or damaged", "other.pt": "not an rvoskit selection checkpoint",
                "pickled.pt": "Python objects"}  # fmt: skip
    for name, what in expected.items():
        with pytest.raises(RvosError) as err:
            load_checkpoint(tmp_path / name)
        msg = str(err.value)
        assert what in msg and name in msg and "expected a checkpoint written by rvoskit train" in msg and "weights_only" not in msg, msg
        res = CliRunner().invoke(app, ["score", c["dataset"], "--checkpoint", str(tmp_path / name), "--tracks", c["tracks"]["grid"], "--out", str(tmp_path / "p")])
        assert res.exit_code == 2 and what in res.output and "Traceback" not in res.output


def test_full_disk_leaves_no_half_checkpoint(tmp_path, monkeypatch):
    import errno

    real_open = open

    class Full:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            if self.n > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(b)

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if "w" in mode and str(path).endswith(".pt") or ".pt.tmp-" in str(path) and "w" in mode else f

    import builtins

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(OSError) as err:
        save_checkpoint(tmp_path / "ckpt" / "epoch_001.pt", {"epoch": 1, "model": {"w": torch.zeros(10000)}})
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC and str(tmp_path / "ckpt" / "epoch_001.pt") in str(err.value.filename)
    assert list((tmp_path / "ckpt").iterdir()) == []  # neither the checkpoint nor a temporary file


def test_old_spellings_still_work_with_a_warning(world, small_run, tmp_path):
    c = world["c"]
    res = CliRunner().invoke(app, ["score", str(small_run), "--dataset", c["dataset"], "--tracks", c["tracks"]["grid"], "--out", str(tmp_path / "p"), "--text-cache", world["cache"]])
    assert res.exit_code == 0, res.output
    assert "deprecated" in res.output and (tmp_path / "p" / "predictions.parquet").is_file()
    res = CliRunner().invoke(app, ["train", "--dataset", c["dataset"], "--tracks", f"grid={c['tracks']['grid']}", "--labels", c["labels"], "--out", str(tmp_path / "r"),
                                   "--epochs", "1", "--text-cache", world["cache"], "-q", *SET])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "deprecated" in res.output
    # score --out RUN would overwrite the checkpoints: refused
    res = CliRunner().invoke(app, ["score", c["dataset"], "--checkpoint", str(small_run), "--tracks", c["tracks"]["grid"], "--out", str(small_run), "--overwrite"])
    assert res.exit_code == 2 and list_checkpoints(small_run)


def test_full_disk_during_training_is_one_line_and_leaves_no_checkpoint(world, tmp_path, monkeypatch):
    import errno

    from rvoskit.selection import checkpoint

    real = checkpoint._Writer.write

    def full(self, b):
        if getattr(self, "_n", 0) + len(b) > 2048:
            self.error = OSError(errno.ENOSPC, "No space left on device")
            raise self.error
        self._n = getattr(self, "_n", 0) + len(b)
        return real(self, b)

    monkeypatch.setattr(checkpoint._Writer, "write", full)
    c = world["c"]
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", c["dataset"], "--tracks", f"grid={c['tracks']['grid']}", "--labels", c["labels"], "--out", str(out),
                                   "--epochs", "1", "--text-cache", world["cache"], "-q", *SET])  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot write" in lines[0] and "No space left on device" in lines[0] and "Traceback" not in res.output, res.output
    assert not list(out.rglob("*.pt")) and not list(out.rglob(".*tmp*"))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nocolon", "is not NAME:dataset=DIR"),
        ("a:dataset", "is not key=value"),
        ("a:dataset=x,colour=red", "unknown key 'colour'"),
        ("a:dataset=x,dataset=y", "'dataset' given twice"),
        ("a b:dataset=x,tracks=t,labels=l", "must use only letters"),
        ("a:dataset=x,tracks=t,labels=l,weight=-1", "weight must be a number >= 0"),
        ("a:dataset=x", "data set needs tracks, labels"),
    ],
)
def test_bad_set_specs_are_one_line_errors(tmp_path, spec, message):
    res = CliRunner().invoke(app, ["train", "--train", spec, "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "r").exists()


def test_single_and_named_forms_do_not_mix(world, tmp_path):
    w = world["a"]
    res = CliRunner().invoke(app, ["train", w["dataset"], "--train", _spec(world["b"], "beta"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "either" in res.output
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "give the training data" in res.output
    with pytest.raises(RvosError, match="mixes the single-set keys"):
        data_sets(load_config(None, ["data.train.dataset=x", "data.train.other.dataset=y"]), "train", check_paths=False)
