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
    return {"ds": ds, "png": png, "labels": labels.parent, "tmp": tmp}


CASES = [("mevis", "png", []), ("davis-semi", "labels", []), ("davis-unsup", "labels", []), ("ref-davis", "png", []),
         ("davis-unsup", "png", ["--anno-set", "1"])]


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
