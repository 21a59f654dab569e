"""Text features: the bundled MiniLM offline, masked-mean sentence features, the disk cache, other encoders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from rvoskit.errors import RvosError
from rvoskit.selection.text import (
    TextEncoder,
    default_encoder_dir,
    encoder_key,
    text_features,
)

torch.set_num_threads(1)

TEXTS = ["the red car turning left", "A dog.", "the person who walks away from the camera and then sits down"]


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder(default_encoder_dir())


def test_minilm_words_and_sentence(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    feats = minilm.encode(TEXTS)
    tok = minilm.tokenizer(TEXTS[1])["input_ids"]  # [CLS] a dog . [SEP]
    assert feats[1].words.shape == (len(tok), 384) and len(tok) == 5
    for f in feats:
        assert f.words.dtype == np.float32
        np.testing.assert_allclose(f.sentence, f.words.mean(0), rtol=1e-6, atol=1e-6)
    # sentence features are the real MiniLM: related texts are closer than unrelated ones
    a, b, c = minilm.encode(["a red car", "a red automobile", "a woman playing the violin"])
    cos = lambda x, y: float(x.sentence @ y.sentence / np.linalg.norm(x.sentence) / np.linalg.norm(y.sentence))
    assert cos(a, b) > cos(a, c) + 0.2


def test_features_do_not_depend_on_batch_padding(minilm):
    batched = minilm.encode(TEXTS)
    for text, f in zip(TEXTS, batched):
        alone = minilm.encode([text])[0]
        assert alone.words.shape == f.words.shape
        np.testing.assert_allclose(alone.words, f.words, atol=2e-5)


def test_cache_is_keyed_by_encoder_and_text(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    feats, info = text_features(TEXTS + [TEXTS[0]], cache_dir=tmp_path)
    assert info["encoded"] == 3 and info["cached"] == 0 and info["dim"] == 384
    shards = list((tmp_path / info["key"]).glob("*.safetensors"))
    assert len(shards) == 1
    again, info2 = text_features(TEXTS[::-1], cache_dir=tmp_path)
    assert info2["encoded"] == 0 and info2["cached"] == 3
    for t in TEXTS:
        assert np.array_equal(again[t].words, feats[t].words)
    # a new text is encoded and added as another shard; the old ones stay
    _, info3 = text_features(TEXTS + ["something new"], cache_dir=tmp_path)
    assert (info3["encoded"], info3["cached"]) == (1, 3)
    assert len(list((tmp_path / info["key"]).glob("*.safetensors"))) == 2
    # the same model in another directory shares the key; a changed model does not
    copy = tmp_path / "copy_of_minilm"
    shutil.copytree(default_encoder_dir(), copy)
    assert encoder_key(copy).split("-")[-1] == info["key"].split("-")[-1]
    (copy / "config.json").write_text((copy / "config.json").read_text().replace('"hidden_act": "gelu"', '"hidden_act": "relu"'))
    assert encoder_key(copy) != encoder_key(default_encoder_dir())


def _tiny_model_dir(tmp_path, kind: str):
    """A random tiny RoBERTa or CLIP (saved as the full CLIPModel) with the MiniLM tokenizer files."""
    from transformers import CLIPConfig, CLIPModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    d = tmp_path / kind
    if kind == "roberta":
        cfg = RobertaConfig(vocab_size=30522, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, pad_token_id=0)
        RobertaModel(cfg).save_pretrained(d)
    else:
        text = dict(vocab_size=30522, hidden_size=40, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=77)
        vision = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=16)
        CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(d)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(default_encoder_dir() / f, d / f)
    return d


@pytest.mark.parametrize("kind,dim", [("roberta", 48), ("clip", 40)])
def test_other_encoder_architectures(tmp_path, kind, dim, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    d = _tiny_model_dir(tmp_path, kind)
    feats, info = text_features(TEXTS, d, tmp_path / "cache")
    assert info["dim"] == dim
    assert feats[TEXTS[1]].words.shape == (5, dim)
    np.testing.assert_allclose(feats[TEXTS[1]].sentence, feats[TEXTS[1]].words.mean(0), rtol=1e-5, atol=1e-6)


def test_bad_encoder_directory_is_a_clear_error(tmp_path):
    with pytest.raises(RvosError, match="config.json"):
        text_features(["x"], tmp_path / "nowhere", tmp_path)
