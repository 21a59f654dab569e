"""Issue 10's "first hour" points that are not the CLI convention itself (tests/test_cli_convention.py)
or the demo run (tests/test_demo.py): exit codes, outputs named as promised, honest labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from typer.testing import CliRunner

from rvoskit.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _out(res) -> str:
    return " ".join(res.output.split())


def test_validate_exit_codes_agree_with_readme(judo_dataset, tmp_path):
    res = runner.invoke(app, ["validate", str(judo_dataset), "-q"])
    assert res.exit_code == 0 and res.output.strip() == ""  # --quiet: only problems are printed
    res = runner.invoke(app, ["info", str(judo_dataset), "-q"])
    assert res.exit_code == 0 and json.loads(res.output)[0]["counts"]["expressions"] == 8  # --quiet: the JSON only
    res = runner.invoke(app, ["validate", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    readme = (REPO / "README.md").read_text()
    assert "exit 1" not in readme  # the README promises 2 for bad input, validate included


def test_export_submission_out_must_be_a_zip(judo_dataset, tmp_path):
    res = runner.invoke(app, ["export", str(judo_dataset), str(tmp_path), "--to", "davis", "--out", str(tmp_path / "subdir")])
    assert res.exit_code == 2 and ".zip" in _out(res)
    assert not (tmp_path / "subdir").exists()
    res = runner.invoke(app, ["export", str(judo_dataset), "--to", "ytvis", "--out", str(tmp_path / "gt")])
    assert res.exit_code == 2 and ".json" in _out(res)
    assert not (tmp_path / "gt").exists()


def test_ytvis_description_is_text(judo_dataset, tmp_path):
    res = runner.invoke(app, ["export", str(judo_dataset), "--to", "ytvis", "--out", str(tmp_path / "gt.json"), "-q"])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "gt.json").read_text())["info"]
    assert isinstance(info["description"], str) and info["description"].startswith("rvoskit ")
    assert "{" not in info["description"] and "refdavis val" in info["description"]
    assert info["rvoskit_source"]["dataset"] == "refdavis"


def test_refdavis_table_counts_expressions_in_its_title(judo_dataset):
    from rvoskit.metrics.evaluation import EvalResult
    from rvoskit.metrics.report import summary_table

    summary = {"protocol": "ref-davis", "davis_task": "unsupervised", "n_objects": 8, "aggregate": "each",
               "sets": {f"anno_{k}": {c: 0.5 for c in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")}
                        for k in range(4)}}
    result = EvalResult.__new__(EvalResult)
    result.summary = summary
    title = str(summary_table(result).title)
    assert "8 expressions" in title and "objects" not in title
    assert result.item_name == "expression"  # the footer's word


def test_histogram_ticks_are_plain_counts():
    from rvoskit.labels import count_label

    assert [count_label(10**k) for k in range(8)] == ["1", "10", "100", "1k", "10k", "100k", "1M", "10M"]
    assert not any(re.search(r"e\d|\^|x10", count_label(10**k)) for k in range(10))


def test_tracks_help_example_names_real_folders():
    text = runner.invoke(app, ["tracks", "generate", "-h"], terminal_width=300).output
    assert "tests/data/tiny" not in text
    assert "examples/refdavis-judo" in text and (REPO / "examples" / "refdavis-judo" / "ImageSets").is_dir()


def test_demo_refuses_an_existing_folder_without_overwrite(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.json").write_text("[]")
    res = runner.invoke(app, ["demo", "--out", str(out)])
    assert res.exit_code == 2 and "--overwrite" in _out(res)
    assert (out / "demo.json").read_text() == "[]"


def test_tracks_generate_overwrite_device_and_old_spellings(judo_dataset, tmp_path):
    """--overwrite replaces a store; --device cpu; the 0.1 --gpu N (CPU without CUDA) still works, with a warning."""
    pytest.importorskip("sam2")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    out = tmp_path / "tracks"
    small = ["--image-size", "256", "--points-per-side", "2", "--max-tracks", "2", "--prompt-frames", "eval", "--threads", "1"]
    res = runner.invoke(app, ["tracks", "generate", str(judo_dataset), "--out", str(out), "--device", "cpu", *small])
    assert res.exit_code == 0, res.output
    assert _out(res).count("RANDOM") == 1  # said once
    manifest = json.loads((out / "trackstore.json").read_text())
    assert manifest["meta"]["sam2"]["config"].endswith("sam2.1_hiera_t.yaml")  # the one default without a checkpoint
    (out / "marker").write_text("old")
    res = runner.invoke(app, ["tracks", "generate", str(judo_dataset), "--out", str(out), "--overwrite", "-q", "--gpu", "0", *small])
    assert res.exit_code == 0, res.output
    assert "--gpu N is deprecated" in _out(res) and "--device cuda:N" in _out(res)
    assert not (out / "marker").exists() and (out / "trackstore.json").is_file()
    assert "tracks / video" not in res.output  # --quiet: no table
