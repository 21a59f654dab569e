"""Reliability over every writing command (issue 11): each class of failure is handled by one
mechanism (:func:`rvoskit.format.outputs.claim_output`, the CLI's error handling in
``rvoskit.cli._Group``, :func:`rvoskit.format.atomic.safe_name`, option ranges declared on the
options), and every case asserts: exit 2, a single ``error:`` line naming the path, no traceback,
nothing left behind, inputs byte-identical afterwards.

Filesystem errors come from a real read-only / full tmpfs where this machine lets the test mount
one (root in a container that allows ``mount -t tmpfs``), else from an injected ``OSError``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.datasets.synthetic import make_mevis, make_refdavis, make_refytvos
from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter, open_dataset
from rvoskit.format import rle as rlemod
from rvoskit.format.atomic import MAX_NAME, safe_name
from rvoskit.format.outputs import claim_output, output_kind
from rvoskit.format.predictions import write_predictions
from rvoskit.selection.synthetic import make_synthetic

COUNTS = {"tried": 0, "handled": 0}


# -- the world: one tiny input of every kind ------------------------------------------------------


def _write_frames(ds_path: Path) -> None:
    """make_synthetic records frame files but writes none: draw small JPEGs where they belong."""
    ds = open_dataset(ds_path)
    for vid, v in ds.videos.iterrows():
        for f in v["frame_files"]:
            p = ds.frame_root / f
            p.parent.mkdir(parents=True, exist_ok=True)
            img = np.full((int(v["height"]), int(v["width"]), 3), (37 * len(f)) % 255, np.uint8)
            cv2.imwrite(str(p), img)


def _predictions_from_gt(ds_path: Path, out: Path) -> Path:
    ds = open_dataset(ds_path)
    rows = []
    for e in ds.expressions.itertuples():
        gt = ds.expression_masks(e.expression_id)
        for t in range(gt.shape[0]):
            rle = rlemod.encode(gt[t])
            rows.append({"expression_id": e.expression_id, "video_id": e.video_id, "exp_id": e.exp_id, "frame_idx": t,
                         "height": gt.shape[1], "width": gt.shape[2], "rle": rle, "area": int(gt[t].sum()), "score": 1.0})
    return write_predictions(out, rows, dataset=ds_path)


def _checkpoint(run: Path) -> Path:
    import torch

    from rvoskit.selection.checkpoint import save_checkpoint
    from rvoskit.selection.config import load_config
    from rvoskit.selection.model import TrackSelectionModel
    from rvoskit.selection.text import default_encoder_dir, encoder_key

    cfg = load_config(None, TINY)
    torch.manual_seed(0)
    model = TrackSelectionModel.from_config(cfg["model"], 384)
    text = {"encoder": str(default_encoder_dir()), "key": encoder_key(default_encoder_dir()), "dim": 384}
    return save_checkpoint(run / "checkpoints" / "epoch_001.pt",
                           {"epoch": 1, "config": cfg, "text": text, "model": model.state_dict(), "metrics": []})


TINY = ["model.width=32", "model.motion_hidden=32", "model.heads=4", "model.groups=4", "model.groups_layer=4"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    syn = make_synthetic(root / "syn", videos=2, tracks={"gt": 2}, frames=4, expressions=2, size=(24, 32))
    ds = Path(syn["dataset"])
    _write_frames(ds)
    w = {
        "root": root,
        "ds": ds,
        "tracks": Path(syn["tracks"]["gt"]),
        "labels": Path(syn["labels"]),
        "pred": _predictions_from_gt(ds, root / "pred"),
        "run": root / "run",
        "mevis": make_mevis(root / "mevis", num_videos=1, num_frames=2, height=24, width=32, num_objects=1),
        "refytvos": make_refytvos(root / "refytvos", num_videos=1, num_frames=2, height=24, width=32, num_objects=1,
                                  valid_videos=1, test_videos=0),
        "refdavis": make_refdavis(root / "refdavis", num_videos=1, num_frames=2, height=24, width=32, num_objects=1),
        "cache": tmp_path_factory.mktemp("text-cache"),  # written by train/score: not an input
    }
    _checkpoint(w["run"])
    return w


def commands(w: dict, out: Path) -> list[dict]:
    """Every writing command with its inputs, writing to ``out`` (``kind``: what it writes)."""
    ds, tr, lb, pred, run = w["ds"], w["tracks"], w["labels"], w["pred"], w["run"]
    small = ["--quiet"]
    train_set = [a for o in TINY for a in ("--set", o)]
    return [
        dict(name="convert mevis", args=["convert", "mevis", w["mevis"], "--split", "train", *small], inputs=[w["mevis"]], kind="dataset"),
        dict(name="convert refytvos", args=["convert", "refytvos", w["refytvos"], "--split", "train", *small], inputs=[w["refytvos"]], kind="dataset"),
        dict(name="convert refdavis", args=["convert", "refdavis", w["refdavis"], "--split", "val", *small], inputs=[w["refdavis"]], kind="dataset"),
        dict(name="tracks generate", args=["tracks", "generate", ds, "--image-size", "64", "--points-per-side", "2", "--max-tracks", "1",
                                           "--device", "cpu", *small], inputs=[ds], kind="tracks"),
        dict(name="pseudolabel", args=["pseudolabel", ds, "--tracks", f"gt={tr}", "--resolution", "native", *small], inputs=[ds, tr], kind="labels"),
        dict(name="corrupt", args=["corrupt", ds, "--type", "gaussian_noise", "--severity", "1", *small], inputs=[ds], kind="dataset"),
        dict(name="train", args=["train", ds, "--tracks", f"gt={tr}", "--labels", lb, "--epochs", "1", "--text-cache", w["cache"],
                                 "--allow-no-positives", *train_set, *small], inputs=[ds, tr, lb], kind="run"),
        dict(name="score", args=["score", ds, "--checkpoint", run, "--tracks", f"gt={tr}", "--text-cache", w["cache"], *small],
             inputs=[ds, run, tr], kind="predictions"),
        dict(name="eval", args=["eval", ds, pred, *small], inputs=[ds, pred], kind="eval"),
        dict(name="export mevis", args=["export", ds, "--to", "mevis", "--frames", "none"], inputs=[ds], kind="export-mevis"),
        dict(name="export ytvis", args=["export", ds, "--to", "ytvis"], inputs=[ds], kind="json-export", suffix=".json"),
        dict(name="export submission", args=["export", ds, pred, "--to", "mevis-submission"], inputs=[ds, pred], kind="submission", suffix=".zip"),
        dict(name="viz dataset", args=["viz", "dataset", ds, "--frames", "2"], inputs=[ds], kind="viz"),
        dict(name="viz tracks", args=["viz", "tracks", ds, "--tracks", tr, "--frames", "2"], inputs=[tr, ds], kind="viz"),
        dict(name="viz predictions", args=["viz", "predictions", ds, pred, "--frames", "2"], inputs=[pred, ds], kind="viz"),
        dict(name="viz report", args=["viz", "report", w["labels"]], inputs=[w["labels"]], kind="report", suffix=".html",
             replaces=True),  # no --overwrite: it replaces its own report (only)
        dict(name="demo", args=["demo", "--epochs", "1", *small], inputs=[], kind="demo"),
        # commands whose inputs this module does not build: the up-front classes only (overlap, kind, lock)
        dict(name="convert mevis-m", args=["convert", "mevis-m", w["mevis"], "--overlay", w["mevis"] / "spans.json", *small],
             inputs=[w["mevis"]], kind="dataset", upfront=True),
        dict(name="convert a2d", args=["convert", "a2d", w["refdavis"], *small], inputs=[w["refdavis"]], kind="dataset", upfront=True),
        dict(name="convert jhmdb", args=["convert", "jhmdb", w["refdavis"], *small], inputs=[w["refdavis"]], kind="dataset", upfront=True),
        dict(name="convert refcoco", args=["convert", "refcoco", w["refdavis"], *small], inputs=[w["refdavis"]], kind="dataset", upfront=True),
        dict(name="moments eval", args=["moments", "eval", ds, pred, *small], inputs=[ds, pred], kind="eval", upfront=True),
        dict(name="moments export", args=["moments", "export", ds, "--to", "chrono", *small], inputs=[ds], kind="json-export",
             suffix=".json", upfront=True),
    ]


# -- helpers ---------------------------------------------------------------------------------------


def invoke(args, out=None, overwrite=False):
    argv = [str(a) for a in args] + (["--out", str(out)] if out is not None else []) + (["--overwrite"] if overwrite else [])
    return CliRunner().invoke(app, argv)


def snapshot(*paths) -> dict:
    """Every file's bytes digest, every folder and link under ``paths`` (inputs must not change)."""
    snap = {}
    for base in paths:
        base = Path(base)
        items = [base] + (sorted(base.rglob("*")) if base.is_dir() and not base.is_symlink() else [])
        for p in items:
            if p.is_symlink():
                snap[str(p)] = ("link", os.readlink(p))
            elif p.is_dir():
                snap[str(p)] = ("dir",)
            elif p.is_file():
                snap[str(p)] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return snap


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.is_dir() else set()


def assert_one_error_line(res, *needles: str) -> str:
    """Exit 2, no traceback, exactly one ``error:`` line, holding every needle; returns the line."""
    text = res.output
    assert res.exit_code == 2, text
    assert "Traceback" not in text and not (res.exception and not isinstance(res.exception, SystemExit)), text
    lines = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, text
    for n in needles:
        assert n in lines[0], (n, text)
    return lines[0]


def case(fn):
    """Count a case (tried; handled when its assertions pass)."""
    COUNTS["tried"] += 1
    fn()
    COUNTS["handled"] += 1


WORLD_KEYS = ("ds", "tracks", "labels", "pred", "run", "mevis", "refytvos", "refdavis", "root", "cache")
ALL = [c["name"] for c in commands({k: Path("/x") for k in WORLD_KEYS}, Path("/o"))]
FULL = [c["name"] for c in commands({k: Path("/x") for k in WORLD_KEYS}, Path("/o")) if not c.get("upfront")]


def _out_params():
    """Every leaf command that has an ``--out`` option (new commands must be listed in commands())."""
    root = typer.main.get_command(app)
    found = []

    def walk(cmd, name):
        if hasattr(cmd, "commands"):
            for n, c in cmd.commands.items():
                walk(c, f"{name} {n}".strip())
        elif any("--out" in getattr(p, "opts", ()) for p in cmd.params):
            found.append(name)

    walk(root, "")
    return found


def test_every_writing_command_is_covered():
    """A command with --out that this module does not walk would escape every class below."""
    walked = {" ".join(a for a in c["args"][:2] if isinstance(a, str) and not a.startswith("-"))
              for c in commands({k: Path("/x") for k in WORLD_KEYS}, Path("/o"))}
    walked |= {w.split()[0] for w in walked}
    missing = [n for n in _out_params() if n not in walked]
    assert not missing, f"add these commands to tests/test_reliability.py commands(): {missing}"


# -- 1. data loss: --out equal to, inside or around an input ----------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_out_overlapping_an_input_is_refused_before_any_work(world, name):
    c = next(c for c in commands(world, Path("/o")) if c["name"] == name)
    ds_frames = open_dataset(world["ds"]).frame_root
    sfx = c.get("suffix", "")  # a command writing one file checks the name's suffix first: keep it right
    inside = c["name"] != "viz report"  # a report may lie among the folders it gathers
    targets = []
    for inp in c["inputs"]:
        inp = Path(inp)
        if not sfx:
            targets.append((inp, "is the input"))
        if inside:
            targets.append((inp / "inner" / f"deeper{sfx}", "lies inside the input"))
    if not sfx:
        targets.append((world["root"], "contains the input"))
    if world["ds"] in c["inputs"] and inside:
        targets.append((ds_frames / f"v0{sfx}", "lies inside the input"))  # the dataset's frame folder is an input too
    if name == "demo":
        from rvoskit.commands.demo import EXAMPLE

        targets = [(EXAMPLE, "is the input"), (EXAMPLE / "JPEGImages", "lies inside the input")]
    before = snapshot(world["root"])
    for out, why in targets:
        for overwrite in (False, True) if why == "is the input" else (True,):
            def one():
                res = invoke(c["args"], out, overwrite)
                assert_one_error_line(res, why, str(out))
            case(one)
    assert snapshot(world["root"]) == before


# -- 1b. --overwrite replaces only an rvoskit output of the same kind -------------------------------


@pytest.mark.parametrize("name", ALL)
def test_overwrite_never_removes_what_is_not_an_output_of_the_same_kind(world, name, tmp_path):
    c = next(c for c in commands(world, Path("/o")) if c["name"] == name)
    suffix = c.get("suffix", "")
    user = tmp_path / f"mine{suffix}"
    if suffix:
        user.write_text("my own notes\n")
    else:
        user.mkdir()
        (user / "notes.txt").write_text("my own notes\n")
    other = tmp_path / f"other{suffix}"  # an rvoskit output of another kind
    if suffix:
        shutil.copy(world["labels"] / "labels.json", other)
    else:
        shutil.copytree(world["labels"] if c["kind"] != "labels" else world["pred"], other)
    before = snapshot(tmp_path, world["root"])
    for out in (user, other):
        def one():
            res = invoke(c["args"], out, overwrite=not c.get("replaces"))
            assert_one_error_line(res, str(out), "not an rvoskit")
        case(one)
    assert snapshot(tmp_path, world["root"]) == before


def test_output_kinds_are_recognised_by_their_manifests(world, tmp_path):
    assert output_kind(world["ds"]) == "dataset"
    assert output_kind(world["tracks"]) == "tracks"
    assert output_kind(world["labels"]) == "labels"
    assert output_kind(world["pred"]) == "predictions"
    assert output_kind(world["mevis"]) is None and output_kind(world["root"]) is None
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert output_kind(run) is None  # a checkpoints folder alone is not enough
    (run / "config.yaml").write_text("model:\n  width: 32\ntrain:\n  epochs: 1\ndata:\n  train: {}\n")
    assert output_kind(run) == "run"
    own = tmp_path / "project"
    own.mkdir()
    (own / "config.yaml").write_text("name: my project\n")
    (own / "summary.json").write_text('{"total": 3}')
    assert output_kind(own) is None


# -- 2. read-only or full file system -------------------------------------------------------------


def _mount(folder: Path, opts: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount") or os.environ.get("RVOSKIT_TEST_NO_MOUNT"):
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True)
    return r.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def full_fs(tmp_path):
    """A folder on a full file system: a small tmpfs filled up, or (where mounting is not allowed)
    a plain folder where every write to it raises ENOSPC."""
    mnt = tmp_path / "full"
    if _mount(mnt, "size=64k"):
        try:
            fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
            yield mnt, "No space left on device", None
        finally:
            _umount(mnt)
    else:
        yield mnt, "No space left on device", errno.ENOSPC


@pytest.fixture
def ro_fs(tmp_path):
    mnt = tmp_path / "ro"
    if _mount(mnt, "ro,size=64k"):
        try:
            yield mnt, "Read-only file system", None
        finally:
            _umount(mnt)
    else:
        yield mnt, "Read-only file system", errno.EROFS


def _inject(monkeypatch, folder: Path, code: int) -> None:
    """Make every creation of a file or folder under ``folder`` fail with ``code``."""
    folder = folder.resolve()
    real_open, real_mkdir, real_osopen = open, os.mkdir, os.open

    def under(p) -> bool:  # the lock file is let through, so that commands fail later, while writing
        try:
            q = Path(os.path.abspath(os.fsdecode(p)))
        except TypeError:
            return False
        return q.is_relative_to(folder) and not q.name.endswith(".lock")

    def fail(p):
        raise OSError(code, os.strerror(code), os.fsdecode(p))

    def os_open(p, flags, *a, **k):
        if under(p) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            fail(p)
        return real_osopen(p, flags, *a, **k)

    def mkdir(p, *a, **k):
        if under(p):
            fail(p)
        return real_mkdir(p, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.mark.parametrize("fs", ["ro_fs", "full_fs"])
@pytest.mark.parametrize("name", FULL)
def test_filesystem_errors_are_one_line_and_leave_nothing(world, name, fs, request, monkeypatch):
    c = next(c for c in commands(world, Path("/o")) if c["name"] == name)
    mnt, reason, inject = request.getfixturevalue(fs)
    if inject is not None:
        _inject(monkeypatch, mnt, inject)
    out = mnt / f"out{c.get('suffix', '')}"
    before_inputs = snapshot(world["root"])
    before = listing(mnt)

    def one():
        res = invoke(c["args"], out)
        line = assert_one_error_line(res, f"cannot write {out}")
        assert reason in line, res.output
        assert listing(mnt) == before, sorted(listing(mnt) - before)

    case(one)
    assert snapshot(world["root"]) == before_inputs


# -- 4. one writer per output ----------------------------------------------------------------------


HOLD = """
import sys, time
from rvoskit.format.outputs import claim_output
for spec in sys.argv[1:]:
    out, kind = spec.rsplit("=", 1)
    claim_output(out, kind=kind)
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_refused_and_a_killed_one_blocks_nothing(world, tmp_path):
    cs = commands(world, Path("/o"))
    outs = {c["name"]: tmp_path / f"{c['name'].replace(' ', '_')}{c.get('suffix', '')}" for c in cs}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, *(f"{outs[c['name']]}={c['kind']}" for c in cs)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for c in cs:
            out = outs[c["name"]]

            def one():
                res = invoke(c["args"], out)
                assert_one_error_line(res, f"another rvoskit process is writing {out}", f"(pid {holder.pid})")
                assert not out.exists()
            case(one)
    finally:
        holder.kill()  # like kill -9: its lock files stay behind
        holder.wait()
    assert (tmp_path / ".eval.lock").exists()
    # a lock left by a killed process blocks nothing
    c = next(c for c in cs if c["name"] == "eval")
    res = invoke(c["args"], outs["eval"])
    assert res.exit_code == 0, res.output
    assert output_kind(outs["eval"]) == "eval"
    assert not (tmp_path / ".eval.lock").exists()


def test_claim_is_released_when_the_command_ends(world, tmp_path):
    c = next(c for c in commands(world, Path("/o")) if c["name"] == "export ytvis")
    out = tmp_path / "x.json"
    for overwrite in (False, True):
        res = invoke(c["args"], out, overwrite)
        assert res.exit_code == 0, res.output
    with claim_output(out, kind="json-export", overwrite=True):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


# -- 8. stale temporaries of a killed run ----------------------------------------------------------


def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next(world, tmp_path):
    # convert killed after writing into its temporary folder; a track store with a half-written file
    out = tmp_path / "ds"
    stale = [tmp_path / ".ds.tmp-k1ll3d", tmp_path / ".ds.old-123"]
    for s in stale:
        s.mkdir()
        (s / "videos.parquet").write_bytes(b"half")
    res = invoke(["convert", "mevis", world["mevis"], "--split", "train", "--quiet"], out)
    assert res.exit_code == 0, res.output
    assert not any(s.exists() for s in stale)
    store = tmp_path / "tracks"
    shutil.copytree(world["tracks"], store)
    half = store / "tracks" / ".v0.parquet.tmp-abc123"
    half.write_bytes(b"half")
    with claim_output(store, kind="tracks"):
        assert not half.exists()
        assert (store / "trackstore.json").is_file()


# -- 3. ids that become file names -----------------------------------------------------------------


def test_safe_name_is_bounded_injective_and_stays_in_its_folder():
    long_e = "é" * 120
    names = {safe_name(x) for x in (long_e, long_e + "x", "é" * 119, "a" * 500, "a" * 501, "a/b", "a%2Fb", "..", ".", "~x")}
    assert len(names) == 10
    for n in names:
        assert len(n) <= MAX_NAME and "/" not in n and n not in (".", "..") and len(n.encode()) < 200
    assert safe_name("a") + "/" + safe_name("b/c") != safe_name("a/b") + "/" + safe_name("c")
    assert safe_name("0ab4afe7fb46") == "0ab4afe7fb46"


def test_long_ids_become_bounded_file_names_in_every_writer(tmp_path):
    """An id of 119 characters, 237 UTF-8 bytes, is legal on disk; its percent-encoding (700
    characters) is not: every writer names its files through safe_name and reads the ids back."""
    syn = make_synthetic(tmp_path / "syn", videos=1, tracks={"gt": 1}, frames=2, expressions=1, size=(32, 32), video_prefix="é" * 118)
    ds = Path(syn["dataset"])
    _write_frames(ds)
    vid = open_dataset(ds).videos.index[0]
    assert len(vid.encode()) > 200
    runs = {
        "corrupt": ["corrupt", ds, "--type", "gaussian_noise", "--severity", "1", "-q"],
        "viz": ["viz", "dataset", ds, "--frames", "2"],
        "export": ["export", ds, "--to", "mevis", "--frames", "copy"],
        "tracks": ["tracks", "generate", ds, "--image-size", "64", "--points-per-side", "2", "--max-tracks", "1", "--device", "cpu", "-q"],
    }
    for name, args in runs.items():
        res = invoke(args, tmp_path / name)
        assert res.exit_code == 0, (name, res.output)
    from rvoskit.format.trackstore import TrackStore

    assert TrackStore(tmp_path / "tracks").done_videos() == [vid]
    assert list(open_dataset(tmp_path / "corrupt").videos.index) == [vid]
    for p in tmp_path.rglob("*"):
        assert len(p.name.encode()) <= 255


def test_colliding_expression_ids_are_refused_by_convert(tmp_path):
    names = ["00000"]
    with pytest.raises(RvosError, match="collide"):
        with DatasetWriter(tmp_path / "ds", dataset="x", split="train", frame_root=tmp_path) as w:
            for vid, exp in (("a", "b/c"), ("a/b", "c")):
                w.add_video({"video_id": vid, "split": "train", "num_frames": 1, "height": 2, "width": 2, "frames": names, "frame_files": names})
                w.add_expressions([{"video_id": vid, "exp_id": exp, "exp_index": 0, "text": "t", "obj_ids": [], "anno_ids": None,
                                    "annotator": None, "kind": None}])
                w.add_masks(vid, [])
    assert not (tmp_path / "ds").exists()


# -- 7. out-of-range options -----------------------------------------------------------------------


RANGES = [
    ["tracks", "generate", "{ds}", "--suppress-iou", "1.5"],
    ["tracks", "generate", "{ds}", "--suppress-iou", "nan"],
    ["tracks", "generate", "{ds}", "--pred-iou-thresh", "-3"],
    ["tracks", "generate", "{ds}", "--feature-cache-mb", "-5"],
    ["viz", "dataset", "{ds}", "--frames", "-1"],
    ["viz", "dataset", "{ds}", "--max-rows", "0"],
    ["viz", "dataset", "{ds}", "--limit", "-1"],
    ["viz", "dataset", "{ds}", "--alpha", "nan"],
    ["viz", "dataset", "{ds}", "--fps", "0"],
    ["corrupt", "{ds}", "--type", "snow", "--severity", "1", "--quality", "0"],
    ["export", "{ds}", "{pred}", "--to", "davis", "--anno-set", "7"],
    ["score", "{ds}", "--checkpoint", "{ds}", "--tracks", "{ds}", "--tau", "1.5"],
    ["score", "{ds}", "--checkpoint", "{ds}", "--tracks", "{ds}", "--tau", "nan"],
    ["score", "{ds}", "--checkpoint", "{ds}", "--tracks", "{ds}", "--batch-size", "0"],
    ["train", "{ds}", "--epochs", "0"],
    ["train", "{ds}", "--batch-size", "0"],
]


@pytest.mark.parametrize("argv", RANGES, ids=lambda a: " ".join(a[:2] + a[-2:]))
def test_out_of_range_options_are_usage_errors(world, tmp_path, argv):
    argv = [a.format(ds=world["ds"], pred=world["pred"]) for a in argv]

    def one():
        res = invoke(argv, tmp_path / "out")
        assert res.exit_code == 2, res.output
        text = " ".join(res.output.replace("│", " ").split())
        assert "Invalid value" in text and argv[-2] in text and "Traceback" not in text, res.output
        assert not (tmp_path / "out").exists()
    case(one)


# -- 9. messages -----------------------------------------------------------------------------------


def test_error_text_is_printed_literally(world, tmp_path, monkeypatch):
    import rvoskit.format.outputs as outputs

    def bad(*a, **k):
        raise RvosError("span must be [a, b] of frame indices; [bold]not markup[/]", file=tmp_path / "spans[1].json")

    monkeypatch.setattr(outputs, "check_overlap", bad)
    res = invoke(["eval", world["ds"], world["pred"]], tmp_path / "out")
    line = assert_one_error_line(res, "span must be [a, b] of frame indices", "[bold]not markup[/]", "spans[1].json")
    assert line.startswith("error: ")


@pytest.mark.parametrize("content,needle", [(b"", "empty file"), (b"hello", "not a torch checkpoint"),
                                            (b"PK\x03\x04" + b"\0" * 50, "truncated")])
def test_bad_checkpoints_say_what_the_file_is(world, tmp_path, content, needle):
    ck = tmp_path / "model.pt"
    ck.write_bytes(content)
    res = invoke(["score", world["ds"], "--checkpoint", ck, "--tracks", f"gt={world['tracks']}", "--quiet"], tmp_path / "out")
    assert_one_error_line(res, str(ck), needle)
    from rvoskit.format.torchfile import torch_file_problem

    assert needle in torch_file_problem(ck)


# -- Ctrl-C ----------------------------------------------------------------------------------------


def test_ctrl_c_prints_how_to_resume_and_exits_130(world, tmp_path, monkeypatch):
    import rvoskit.metrics as metrics

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(metrics, "evaluate", interrupted)
    res = invoke(["eval", world["ds"], world["pred"]], tmp_path / "out")
    assert res.exit_code == 130, res.output
    assert "interrupted: rerun the same command to resume" in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # lock released and removed, nothing written


def test_sigint_in_a_real_process(world, tmp_path):
    """A real Ctrl-C (SIGINT to the process) during a command: the message and exit 130."""
    code = ("import time, rvoskit.metrics as m\n"
            "def slow(*a, **k):\n    print('started', flush=True); time.sleep(60)\n"
            "m.evaluate = slow\nimport sys\nfrom rvoskit.cli import main\nsys.argv = ['rvoskit'] + sys.argv[1:]\nmain()\n")
    import signal

    # the process starts with SIGINT's default action, as from a terminal: a test run launched in the
    # background by a non-interactive shell (`bash .ci/run &`) ignores SIGINT, children inherit that,
    # and Python then installs no KeyboardInterrupt handler
    p = subprocess.Popen([sys.executable, "-c", code, "eval", str(world["ds"]), str(world["pred"]), "--out", str(tmp_path / "o"), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline().strip() == "started"
    p.send_signal(2)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "interrupted: rerun the same command to resume" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# -- 8. worker processes ---------------------------------------------------------------------------


def test_every_process_pool_goes_through_the_executor():
    """Workers die with their parent (PR_SET_PDEATHSIG, tests/test_executor.py) only if every pool
    is made by rvoskit.executor."""
    root = Path(__file__).resolve().parents[1] / "rvoskit"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "executor.py" and ("ProcessPoolExecutor(" in p.read_text() or "multiprocessing.Pool(" in p.read_text())]
    assert not offenders




def test_file_system_errors_name_the_output_or_the_file(monkeypatch, tmp_path):
    """``cannot write OUT`` only for the output (its folder, temporaries, lock, a disk error with no
    file named); another file is named as itself."""
    from rvoskit import cli
    from rvoskit.format import outputs

    out = tmp_path / "out"
    monkeypatch.setattr(outputs, "_last", [out])
    cases = [
        (OSError(errno.ENOSPC, "No space left on device"), f"cannot write {out}: No space left on device"),
        (OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".out.lock")), f"cannot write {out}: Read-only file system"),
        (OSError(errno.ENOSPC, "No space left on device", "/cache/x"), "cannot write /cache/x: No space left on device"),
        (OSError(errno.EACCES, "Permission denied", "/data/in.json"), "/data/in.json: Permission denied"),
    ]
    for exc, line in cases:
        assert cli._oserror_line(exc) == line


def test_atomic_dir_never_replaces_an_output_that_appeared_meanwhile(tmp_path):
    """Two writers without the CLI's lock (library callers): the second does not silently replace the first."""
    from rvoskit.format.atomic import atomic_dir

    out = tmp_path / "ds"
    with pytest.raises(RvosError, match="appeared while"):
        with atomic_dir(out) as tmp:
            (tmp / "dataset.json").write_text("{}")
            with atomic_dir(out) as tmp2:  # the other writer finishes first
                (tmp2 / "dataset.json").write_text('{"first": true}')
    assert (out / "dataset.json").read_text() == '{"first": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_zz_counts_report():
    """Last in the module; printed with -s: the cases tried and handled above (the issue asks for
    the counts)."""
    print(f"\nreliability cases: tried {COUNTS['tried']}, handled {COUNTS['handled']}")
