"""The streaming byte-range index that reads MeViS mask_dict.json one object at a time."""

from __future__ import annotations

import json

import pytest

from rvoskit.datasets.jsonindex import JsonObjectIndex
from rvoskit.errors import RvosError


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 22])
def test_index_matches_json_load_across_chunk_boundaries(tmp_path, chunk):
    doc = {str(i): [None if i % 3 == 0 else {"size": [4, 5], "counts": "a\\b]" * i}, 12345 * i, -0.5] for i in range(60)}
    doc['weird "key" é'] = {"nested": [1, {"x": "}"}]}
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc, indent=1 if chunk == 7 else None, ensure_ascii=True))
    idx = JsonObjectIndex(p, chunk=chunk)
    assert len(idx) == len(doc)
    for k, v in doc.items():
        assert idx.get(k) == v


def test_index_errors_name_the_file(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{"1": [1], "1": [2]}')
    with pytest.raises(RvosError, match="duplicate key '1'"):
        JsonObjectIndex(p)
    p.write_text('[1, 2]')
    with pytest.raises(RvosError, match="expected '{'"):
        JsonObjectIndex(p)
    p.write_text('{"1": [1, 2')
    with pytest.raises(RvosError, match="m.json.*truncated"):
        JsonObjectIndex(p, chunk=4)
