"""The command-line convention (docs/cli.md), checked over every command and subcommand.

The walk is over the live command tree, so a new command is checked as soon as it is registered.
"""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.commands import _options as opt

runner = CliRunner()
ROOT = typer.main.get_command(app)


def _walk(cmd, path=()):
    subs = getattr(cmd, "commands", None)
    if subs:
        yield path, cmd, True
        for name in sorted(subs):
            yield from _walk(subs[name], path + (name,))
    else:
        yield path, cmd, False


ALL = list(_walk(ROOT))
LEAVES = [(p, c) for p, c, group in ALL if not group]
IDS = [" ".join(p) or "rvoskit" for p, _, _ in ALL]
LEAF_IDS = [" ".join(p) for p, _ in LEAVES]


#: Commands that regenerate their own output file on every run (docs/cli.md says which and why).
REWRITES_OWN_OUTPUT = {("viz", "report")}


def _options(cmd):
    return [p for p in cmd.params if p.param_type_name == "option" and not p.hidden and p.name != "help"]


def _arguments(cmd):
    return [p for p in cmd.params if p.param_type_name == "argument"]


def test_every_command_is_walked():
    names = {" ".join(p) for p, _ in LEAVES}
    for expected in ("demo", "convert mevis", "validate", "info", "tracks generate", "pseudolabel", "corrupt",
                     "train", "score", "eval", "export", "viz dataset", "viz tracks", "viz predictions", "viz report"):
        assert expected in names


@pytest.mark.parametrize("path", [p for p, _, _ in ALL], ids=IDS)
def test_dash_h_works_and_flags_show_no_bool(path):
    res = runner.invoke(app, [*path, "-h"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output
    assert "<bool>" not in res.output  # plain flags show no value type


@pytest.mark.parametrize("path,cmd", LEAVES, ids=LEAF_IDS)
def test_shared_options_have_one_spelling(path, cmd):
    opts = _options(cmd)
    for p in opts:
        if p.name in opt.SHARED:
            long, short = opt.SHARED[p.name]
            want = {long} | ({short} if short else set())
            assert set(p.opts) == want and not p.secondary_opts, f"{' '.join(path)}: {p.opts} should be {sorted(want)}"
        for o in p.opts:  # a shared long name under another parameter name is a second spelling
            for name, (long, _) in opt.SHARED.items():
                if o == long:
                    assert p.name == name, f"{' '.join(path)}: {o} is parameter {p.name!r}, not {name!r}"
        if p.name == "dataset":  # --dataset always names a dataset folder
            assert p.type_descriptor.is_path, f"{' '.join(path)}: --dataset is not a path"
        if p.is_flag:
            assert p.is_bool_flag and not p.secondary_opts, f"{' '.join(path)}: {p.opts} is not a plain flag"
    names = {o for p in opts for o in p.opts}
    assert {"--quiet", "-q"} <= names, f"{' '.join(path)}: no --quiet/-q"
    for old in ("--gpu", "--cpu"):
        assert old not in names, f"{' '.join(path)}: {old} is deprecated (use --device)"
    if "--config" in names:
        assert path == ("train",), f"{' '.join(path)}: --config is train's config file; a SAM2 config is --sam2-config"
    if "--out" in names and path not in REWRITES_OWN_OUTPUT:
        assert "--overwrite" in names, f"{' '.join(path)}: writes --out but has no --overwrite"
    ranged = {p.name: p for p in opts}
    if "workers" in ranged:
        assert ranged["workers"].min == 1
    if "severity" in ranged:
        assert (ranged["severity"].min, ranged["severity"].max) == (1, 5)
    for p in opts:
        if p.name == "device":
            assert p.callback is not None  # the one --device check


@pytest.mark.parametrize("path,cmd", LEAVES, ids=LEAF_IDS)
def test_dataset_is_the_first_positional(path, cmd):
    args = _arguments(cmd)
    metas = [(a.metavar or a.name).upper() for a in args]
    has_dataset_arg = any(m.startswith("DATASET") for m in metas)
    if has_dataset_arg:
        assert metas[0].startswith("DATASET"), f"{' '.join(path)}: positionals {metas}: the dataset comes first"
    visible = {o for p in _options(cmd) for o in p.opts}
    if "--dataset" in visible:  # only where the dataset is a secondary input
        assert not has_dataset_arg, f"{' '.join(path)}: both a DATASET argument and --dataset"
        assert args, f"{' '.join(path)}: --dataset is its main input: make it the first positional"
    for a in args:
        assert not re.search(r"tracks|labels|checkpoint", a.name), f"{' '.join(path)}: {a.name} is an option (--tracks/--labels/--checkpoint)"


def test_short_forms_mean_one_thing_everywhere():
    seen: dict[str, set[str]] = {}
    for _, cmd in LEAVES:
        for p in _options(cmd):
            longs = [o for o in p.opts if o.startswith("--")]
            for o in p.opts:
                if not o.startswith("--"):
                    seen.setdefault(o, set()).update(longs)
    for short, longs in seen.items():
        assert len(longs) == 1, f"{short} means {sorted(longs)}"
    assert "-s" not in seen  # was --split in convert and --severity in corrupt


def test_commands_in_pipeline_order():
    import click

    listed = ROOT.list_commands(click.Context(ROOT))
    assert set(listed) <= set(opt.COMMAND_ORDER), f"add {set(listed) - set(opt.COMMAND_ORDER)} to COMMAND_ORDER"
    assert listed == [c for c in opt.COMMAND_ORDER if c in listed]
    text = runner.invoke(app, ["-h"], terminal_width=200).output
    pos = [re.search(rf"^│ {re.escape(c)} ", text, re.M).start() for c in listed]
    assert pos == sorted(pos)


def test_flag_with_a_value_gets_a_hint(tmp_path):
    res = runner.invoke(app, ["eval", str(tmp_path), str(tmp_path), "--overwrite", "true"])
    assert res.exit_code == 2
    assert "take no value" in " ".join(res.output.split())


def test_device_values_checked_where_defined(tmp_path):
    res = runner.invoke(app, ["tracks", "generate", str(tmp_path), "--out", str(tmp_path / "t"), "--device", "gpu0"])
    assert res.exit_code == 2 and "cuda:N" in res.output
    assert opt.resolve_device("cpu") == "cpu"
    assert opt.resolve_device("auto") in ("cpu", "cuda:0")


def test_sam2_config_default_is_one_rule():
    assert opt.resolve_sam2_config(None, None) == opt.DEFAULT_SAM2_CONFIG
    assert opt.resolve_sam2_config(None, "ckpt/sam2_hiera_large.pt") == "sam2_hiera_l"
    assert opt.resolve_sam2_config(None, "sam2.1_hiera_base_plus.pt") == "sam2.1_hiera_b+"
    assert opt.resolve_sam2_config("sam2.1_hiera_s", "sam2_hiera_large.pt") == "sam2.1_hiera_s"
    from rvoskit.errors import RvosError

    with pytest.raises(RvosError, match="--sam2-config"):
        opt.resolve_sam2_config(None, "model_final.pt")
    # demo and tracks share it: neither declares its own default
    for path in (("demo",), ("tracks", "generate")):
        cmd = dict((p, c) for p, c in LEAVES)[path]
        (p,) = [p for p in cmd.params if p.name == "sam2_config"]
        assert p.default is None


def test_deprecated_spellings_still_work_with_a_warning(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "refdavis-judo"
    res = runner.invoke(app, ["convert", "refdavis", str(example), "-s", "val", "-o", str(tmp_path / "ds"), "-q"])
    assert res.exit_code == 0, res.output
    assert "-s is deprecated" in res.output and "--split" in res.output
    assert (tmp_path / "ds" / "dataset.json").is_file()
    res = runner.invoke(app, ["corrupt", str(tmp_path / "ds"), "-t", "brightness", "-s", "1", "-o", str(tmp_path / "c"), "-q"])
    assert res.exit_code == 0, res.output
    assert "-s is deprecated" in res.output and "--severity" in res.output
    # old and new spellings with different values: refused
    res = runner.invoke(app, ["convert", "refdavis", str(example), "-s", "val", "--split", "train", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "both given" in res.output
    # hidden from -h
    assert not re.search(r"--gpu\b(?!s)", runner.invoke(app, ["tracks", "generate", "-h"], terminal_width=200).output)
