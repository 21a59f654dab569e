"""Start-up cost of whole commands (issue 13): ``rvoskit eval`` on PNG predictions runs without
importing pandas (~0.3 s of CPU), and what it writes without pandas is what pandas wrote."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_eval import OSVOS, build_dataset, read_labels, write_png_expr

from rvoskit.datasets.submission import label_png_bytes
from rvoskit.format import open_dataset
from rvoskit.metrics import evaluate
from rvoskit.metrics.report import write_csv

RUN = """
import sys, runpy
sys.argv = ["rvoskit"] + sys.argv[1:]
try:
    runpy.run_module("rvoskit.cli", run_name="__main__")
except SystemExit as e:
    assert e.code in (0, None), e.code
print("PANDAS_IMPORTED", "pandas" in sys.modules)
"""


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("startup")
    frames, lab = read_labels(OSVOS / "judo", 5)
    exprs = [(str(4 * (o - 1) + k), [o], 1 + k // 2, ("first_frame", "full_video")[k % 2]) for o in (1, 2) for k in range(4)]
    ds = build_dataset(tmp / "ds", {"judo": {"frames": frames, "labels": lab, "expressions": exprs}}, dataset="refdavis",
                       void={"judo": (np.arange(lab.shape[1]) % 50 == 0)[None, :, None].repeat(5, 0).repeat(lab.shape[2], 2).astype(np.uint8)})
    nxt = np.concatenate([lab[1:], lab[-1:]])
    png = write_png_expr(tmp / "png", {("judo", x): np.isin(nxt, [o]).astype(np.uint8) for x, (o,), _, _ in exprs}, {"judo": frames})
    labels = tmp / "labels" / "judo"
    labels.mkdir(parents=True)
    for f, m in zip(frames, nxt):
        (labels / f"{f}.png").write_bytes(label_png_bytes(m))
    from rvoskit.format.predictions import write_predictions
    from rvoskit.metrics.sources import open_predictions, prediction_rows

    rows = prediction_rows(open_predictions(png), open_dataset(ds), "judo").assign(score=None).to_dict("records")
    table = write_predictions(tmp / "table", rows[::-1], dataset=ds)  # any row order
    return {"ds": ds, "png": png, "labels": labels.parent, "table": table, "tmp": tmp}


CASES = [("mevis", "png", []), ("davis-semi", "labels", []), ("davis-unsup", "labels", []), ("ref-davis", "png", []),
         ("davis-unsup", "png", ["--anno-set", "1"]), ("mevis", "table", []), ("ref-davis", "table", [])]


@pytest.mark.parametrize("protocol,pred,extra", CASES)
def test_eval_does_not_import_pandas_and_writes_what_pandas_wrote(case, protocol, pred, extra, tmp_path):
    out = tmp_path / "out"
    args = [str(case["ds"]), str(case[pred]), "-p", protocol, "--per-frame", "--out", str(out), *extra]
    r = subprocess.run([sys.executable, "-c", RUN, "eval", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "PANDAS_IMPORTED False" in r.stdout, r.stdout
    # the same evaluation in this process, its tables as DataFrames written by pandas (the old writer)
    res = evaluate(case["ds"], case[pred], protocol, anno_set=int(extra[1]) if extra else None)
    name = f"per_{res.item_name}"
    for df, stem in ((res.items, name), (res.frames, "per_frame")):
        assert len(df)
        got = pq.read_table(out / f"{stem}.parquet")
        ref = pa.Table.from_pandas(df, preserve_index=False)
        assert got.schema.remove_metadata() == ref.schema.remove_metadata()
        assert got.equals(ref.replace_schema_metadata(got.schema.metadata))
        assert (out / f"{stem}.csv").read_text() == df.to_csv(index=False, float_format="%.17g")
    assert json.loads((out / "summary.json").read_text())["protocol"] == protocol


def test_write_csv_is_pandas_to_csv(tmp_path):
    """Random tables with nulls, NaN, inf, -0.0, empty and quoted text: the bytes of ``to_csv``."""
    rng = np.random.default_rng(0)
    words = ["a", "", "b,c", 'q"uote', "line\nbreak", "é", " sp ", "x" * 30]
    for n in (0, 1, 7, 50):
        f = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
        f[rng.random(n) < 0.2] = np.nan
        if n > 3:
            f[:3] = [np.inf, -0.0, 1 / 3]
        cols = {
            "s": pd.array([None if rng.random() < 0.2 else words[rng.integers(len(words))] for _ in range(n)], dtype="str")
            if n else pd.array([], dtype="str"),
            "none": pd.Series([None] * n, dtype=object),
            "i64": rng.integers(-(2**62), 2**62, n),
            "i32": rng.integers(-5, 5, n).astype(np.int32),
            "J&F": f,
        }
        df = pd.DataFrame(cols)
        t = pa.Table.from_pandas(df, preserve_index=False)
        write_csv(t, tmp_path / "x.csv")
        assert (tmp_path / "x.csv").read_bytes() == df.to_csv(index=False, float_format="%.17g").encode(), n
        back = list(csv.reader(io.StringIO((tmp_path / "x.csv").read_text(), newline="")))
        assert len(back) == n + 1 and back[0] == list(cols)


# -- pseudolabel -------------------------------------------------------------------------------------


def pandas_summary(table: pd.DataFrame, expressions: pd.DataFrame, *, sources, missing, videos) -> dict:
    """The reference: ``labels.summarize`` as it was written with pandas (rvoskit 0.2), verbatim."""
    exprs = expressions[expressions["video_id"].isin(set(videos))]
    labelled = set(table["expression_id"].unique())
    pos = table.groupby("expression_id")["label"].sum().reindex(list(exprs["expression_id"]), fill_value=0)
    no_target = set(exprs.loc[exprs["obj_ids"].map(len) == 0, "expression_id"])
    no_tracks = [e for e in exprs["expression_id"] if e not in labelled]
    none = pos[pos == 0].index
    hist = pos.value_counts().sort_index()
    per_source = {}
    for s in sources:
        t = table[table["source"] == s]
        per_source[s] = {
            "rows": len(t),
            "tracks": int(t[["video_id", "track_id"]].drop_duplicates().shape[0]),
            "positives": int(t["label"].sum()),
            "expressions_with_positive": int(t.loc[t["label"], "expression_id"].nunique()),
            "missing_videos": len(missing.get(s, [])),
            "missing_video_ids": list(missing.get(s, []))[:20],
        }

    def _mean(x: pd.Series) -> float | None:
        x = x.dropna()
        return float(x.mean()) if len(x) else None

    return {
        "rows": len(table),
        "positives": int(table["label"].sum()),
        "videos": len(videos),
        "expressions": len(exprs),
        "expressions_labelled": len(labelled),
        "expressions_without_tracks": len(no_tracks),
        "expressions_without_positive": len(none),
        "expressions_without_positive_no_target": len(no_target.intersection(none)),
        "lost_for_training_fraction": float(len(none) / len(exprs)) if len(exprs) else 0.0,
        "positives_per_expression": {
            "mean": float(pos.mean()) if len(pos) else 0.0,
            "median": float(pos.median()) if len(pos) else 0.0,
            "max": int(pos.max()) if len(pos) else 0,
            "histogram": {str(int(k)): int(v) for k, v in hist.items()},
        },
        "miou_max_mean": _mean(table["miou_max"]),
        "miou_union_mean": _mean(table["miou_union"]),
        "sources": per_source,
    }


@pytest.mark.parametrize("args", [["--resolution", "native"], ["--resolution", "24x32", "--target", "union", "--iou", "0.4"]])
def test_pseudolabel_does_not_import_pandas_and_summary_is_pandas(tmp_path, args):
    from test_pseudolabel import make_dataset, make_store

    rng = np.random.default_rng(len(args))
    T, H, W = 5, 30, 40

    def blob():
        m = np.zeros((H, W), np.uint8)
        y, x = rng.integers(0, H - 8), rng.integers(0, W - 8)
        m[y : y + rng.integers(3, 12), x : x + rng.integers(3, 14)] = 1
        return m

    videos, stores = {}, {}
    for v in ("a", "b"):
        objects = {o: {t: blob() for t in range(T) if rng.random() < 0.9} for o in (1, 2, 3)}
        videos[v] = {"size": (H, W), "T": T, "objects": objects, "expressions": [[1], [2, 3], [], [3], [1, 2]]}
        stores[v] = np.stack([np.stack([objects[1 + i % 3].get(t, blob()) if i < 3 else blob() for t in range(T)]) for i in range(6)])
    ds = make_dataset(tmp_path / "ds", videos)
    grid = make_store(tmp_path / "grid", stores)
    out = tmp_path / "labels"
    r = subprocess.run([sys.executable, "-c", RUN, "pseudolabel", str(ds), "--tracks", f"grid={grid}", "--out", str(out), "-q", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "PANDAS_IMPORTED False" in r.stdout, r.stdout
    meta = json.loads((out / "labels.json").read_text())
    table = pd.read_parquet(out / "labels.parquet")
    assert 0 < table["label"].sum() < len(table)
    ref = pandas_summary(table, open_dataset(ds).expressions, sources=["grid"], missing={"grid": []}, videos=["a", "b"])
    assert meta["summary"] == ref


def test_summarize_is_the_pandas_code_on_random_tables():
    from rvoskit.labels import summarize

    rng = np.random.default_rng(1)
    for n in (0, 1, 40, 300):
        eids = [f"v{i % 3}/{i}" for i in range(12)]
        exprs = pd.DataFrame({"expression_id": eids, "video_id": [e.split("/")[0] for e in eids],
                              "obj_ids": [list(range(rng.integers(0, 3))) for _ in eids]})
        e = rng.choice(eids[:10], n)
        miou = rng.random(n)
        miou[rng.random(n) < 0.2] = np.nan
        table = pd.DataFrame({"expression_id": e, "video_id": [x.split("/")[0] for x in e], "source": rng.choice(["g", "h"], n),
                              "track_id": rng.integers(0, 5, n).astype(np.int32), "miou_max": miou, "miou_union": rng.random(n),
                              "label": rng.random(n) < 0.3})
        kw = {"sources": ["g", "h", "k"], "missing": {"h": ["v9"]}, "videos": ["v0", "v1"]}
        assert summarize(table, exprs, **kw) == pandas_summary(table, exprs, **kw), n


def _random_value(rng, t: pa.DataType):
    if rng.random() < 0.1:
        return None
    if pa.types.is_string(t):
        return ["", "a", "é", "judo/0", "x" * int(rng.integers(0, 40))][int(rng.integers(0, 5))]
    if pa.types.is_binary(t):
        return [b"", b"ab\x00", b"\\" * int(rng.integers(0, 9))][int(rng.integers(0, 3))]
    if pa.types.is_integer(t):
        lim = {8: 127, 32: 2**31 - 1, 64: 2**63 - 1}[t.bit_width]
        return [0, -1, lim, -lim - 1, int(rng.integers(-100, 100))][int(rng.integers(0, 5))]
    if pa.types.is_floating(t):
        return [1.5, -0.0, 3, float("nan"), float("inf"), 2**53][int(rng.integers(0, 6))]
    return [_random_value(rng, t.value_type) for _ in range(int(rng.integers(0, 4)))]


@pytest.mark.parametrize("table", ["videos", "objects", "expressions", "masks", "moments", "void"])
def test_from_pylist_is_pyarrows_from_pylist(table):
    """arrowbuf.from_pylist (no pandas) builds what pa.Table.from_pylist builds: same types, values,
    nulls (missing keys, null lists, null list items), NaN and extreme integers included."""
    from rvoskit.format import arrowbuf
    from rvoskit.format.schema import arrow_schema

    schema = arrow_schema(table)
    rng = np.random.default_rng(7)
    for _ in range(150):
        rows = [{f.name: _random_value(rng, f.type) for f in schema if rng.random() < 0.95} for _ in range(int(rng.integers(1, 7)))]
        ours, ref = arrowbuf.from_pylist(rows, schema), pa.Table.from_pylist(rows, schema=schema)
        assert ours is not None
        ours.validate(full=True)
        assert ours.schema.equals(ref.schema, check_metadata=True)
        assert [c.null_count for c in ours.columns] == [c.null_count for c in ref.columns]
        assert repr(ours.to_pylist()) == repr(ref.to_pylist())  # repr: NaN equals NaN


@pytest.mark.parametrize("value", [True, 2**63, 1.0, (1, 2), np.int64(3)])
def test_from_pylist_leaves_odd_values_to_pyarrow(value, tmp_path):
    """A value outside what from_pylist builds exactly gives None, and to_arrow then gives
    pyarrow's own answer (the same table, or the same schema error)."""
    from rvoskit.errors import RvosError
    from rvoskit.format import arrowbuf
    from rvoskit.format.schema import arrow_schema
    from rvoskit.format.store import to_arrow

    row = {"video_id": "v", "obj_id": value, "anno_id": "1", "category": None}
    schema = arrow_schema("objects")
    assert arrowbuf.from_pylist([row], schema) is None
    try:
        ref = pa.Table.from_pylist([row], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        with pytest.raises((RvosError, OverflowError)):
            to_arrow("objects", [row])
    else:
        assert to_arrow("objects", [row]).equals(ref)


def test_convert_mevis_does_not_import_pandas(tmp_path):
    from rvoskit.datasets.synthetic import make_mevis

    root = make_mevis(tmp_path / "mv", num_videos=3, num_frames=4)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", RUN, "convert", "mevis", str(root), "--out", str(out), "-q"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "PANDAS_IMPORTED False" in r.stdout, r.stdout
    ds = open_dataset(out)
    assert len(ds.table("expressions")) > 0 and len(ds.table("masks")) > 0


@pytest.mark.parametrize("typ", [pa.string(), pa.large_string(), pa.binary()])
def test_strings_is_pa_array(typ):
    """arrowbuf.strings (ASCII fast path, non-ASCII, nulls, empty) builds what pa.array builds."""
    from rvoskit.format import arrowbuf

    rng = np.random.default_rng(3)
    pool = ["", "a", "judo/3", "é", "日本", "x" * 70, None]
    for _ in range(100):
        vals = [pool[i] for i in rng.integers(0, len(pool), int(rng.integers(0, 12)))]
        if rng.random() < 0.5:
            vals = [v for v in vals if v is not None]
        if pa.types.is_binary(typ):
            vals = [None if v is None else v.encode() for v in vals]
        ours = arrowbuf.strings(vals, typ)
        ours.validate(full=True)
        assert ours.equals(pa.array(vals, typ)) and ours.null_count == vals.count(None)
    with pytest.raises(UnicodeEncodeError):
        arrowbuf.strings(["a", "\ud800"], pa.string())
