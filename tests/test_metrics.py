"""Metrics in the label's units beside the paper's (experiments/metrics.py): checked against scikit-learn's metric
functions on unscaled labels, recorded in every result, readable from files written before them, and tabled by
``make_tables --metric``."""

from __future__ import annotations

import copy
import csv
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from experiments.labels import MinMaxScaler
from experiments.metrics import label_metrics, split_metrics
from experiments.protocol import pipeline
from experiments.protocol.splits import paper_split
from experiments.store.results import ResultError, check_result, read_result
from scripts import make_tables
from softstep.model import embed_rows
from tests.test_report_tables import fake_result, put

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(2, 300), elements=finite), st.integers(0, 2**31 - 1))
def test_label_metrics_are_sklearns(y, seed):
    pred = y + np.random.default_rng(seed).normal(0, 1 + np.abs(y).mean(), len(y))
    m = label_metrics(y, pred)
    assert all(math.isfinite(v) for v in m.values())
    np.testing.assert_allclose(m["mse_orig"], mean_squared_error(y, pred), rtol=1e-12)
    np.testing.assert_allclose(m["rmse_orig"], math.sqrt(mean_squared_error(y, pred)), rtol=1e-12)
    np.testing.assert_allclose(m["mae_orig"], mean_absolute_error(y, pred), rtol=1e-12)
    expected = r2_score(y, pred)
    if not math.isfinite(expected):  # labels whose spread squares to (almost) nothing: constant labels' R²
        expected = 1.0 if m["mse_orig"] == 0 else 0.0
    np.testing.assert_allclose(m["r2"], expected, rtol=1e-9, atol=1e-12)


def test_labels_whose_spread_squares_to_nothing_give_a_finite_r2():
    y = np.array([1.39e-155, 0.0])  # hypothesis found it: r2_score gives -inf here
    assert label_metrics(y, y + 1.0)["r2"] == 0.0
    assert label_metrics(y, y)["r2"] == 1.0


def test_constant_labels_give_a_finite_r2_and_one_row_none():
    assert label_metrics([2.0] * 5, [2.0] * 5)["r2"] == 1.0
    assert label_metrics([2.0] * 5, [1.0, 2, 3, 2, 2])["r2"] == 0.0
    assert label_metrics([2.0], [3.0]) == {"mse_orig": 1.0, "rmse_orig": 1.0, "mae_orig": 1.0}  # no R² of one row


def test_split_metrics_keep_the_papers_and_add_the_label_units():
    rng = np.random.default_rng(0)
    y_train, y_test = rng.gamma(2, 10, 500), rng.gamma(2, 10, 100)
    scaler = MinMaxScaler(y_train)
    pred = y_test + rng.normal(0, 3, 100)
    scaled_mse = float(np.mean((scaler.transform(pred) - scaler.transform(y_test)) ** 2))
    m = split_metrics(scaled_mse, 0.01, scaler, {"test": (y_test, pred)})
    assert m["test_mse_x1e3"] == 1e3 * scaled_mse and m["val_mse_x1e3"] == 10.0
    np.testing.assert_allclose(m["test_mse_orig"], mean_squared_error(y_test, pred), rtol=1e-9)
    np.testing.assert_allclose(m["test_rmse_orig"], np.sqrt(mean_squared_error(y_test, pred)), rtol=1e-9)
    np.testing.assert_allclose(m["test_mae_orig"], mean_absolute_error(y_test, pred), rtol=1e-12)
    np.testing.assert_allclose(m["test_r2"], r2_score(y_test, pred), rtol=1e-9)
    assert "val_rmse_orig" not in m  # no validation predictions given
    assert set(split_metrics(float("nan"), 0.01, scaler)) == {"val_mse", "val_mse_x1e3", "val_mse_orig"}


def test_an_mse_on_the_scaled_label_is_in_squared_label_units():
    """Without predictions, ``<set>_mse_orig`` is the scaled MSE times the squared label span: labels spanning 10 to 30
    (span 20) with every prediction off by 2 have MSE 4 in the label's units and (2 / 20)^2 = 0.01 on the scaled one."""
    scaler = MinMaxScaler(np.array([10.0, 30.0, 25.0]))
    assert scaler.mse_to_original(0.01) == pytest.approx(4.0)
    m = split_metrics(0.01, 0.0025, scaler)
    assert m["test_mse_orig"] == pytest.approx(4.0) and m["val_mse_orig"] == pytest.approx(1.0)


@pytest.mark.parametrize("head", ["nca_i", "linear"])
def test_every_result_records_sklearns_metrics_on_the_unscaled_label(tiny, head, capsys):
    res = pipeline.run(tiny(f"head={head}", "splits=[1]", "dataset.loader.n=200"), keep_models=True)
    t = res.trained[1]
    record = read_result(res.key.split_path(1))
    m = record["metrics"]
    # the test predictions again, by hand: the reference set is the training split, the label unscaled with the
    # training split's min and max as recorded
    train_idx, _, test_idx = paper_split(t.y_scaled, 1)  # the same rows: min-max scaling keeps the label's order
    assert (train_idx == t.idx[0]).all() and (test_idx == t.idx[2]).all()
    model = t.model.eval()
    with torch.no_grad():
        z_ref = embed_rows(model, t.inputs, train_idx, 512, "cpu")
        z = embed_rows(model, t.inputs, test_idx, 512, "cpu")
        scaled = model.head.predict(z, z_ref, torch.as_tensor(t.y_scaled[train_idx], dtype=torch.float32))
    lo, hi = record["label_range"]
    y_true = lo + t.y_scaled[test_idx] * (hi - lo)
    pred = lo + scaled.double().numpy() * (hi - lo)
    assert y_true.std() > 0.1  # the synthetic label is not already on [0, 1]: units matter
    np.testing.assert_allclose(m["test_mse_orig"], mean_squared_error(y_true, pred), rtol=1e-5)
    np.testing.assert_allclose(m["test_rmse_orig"], math.sqrt(mean_squared_error(y_true, pred)), rtol=1e-5)
    np.testing.assert_allclose(m["test_mae_orig"], mean_absolute_error(y_true, pred), rtol=1e-5)
    np.testing.assert_allclose(m["test_r2"], r2_score(y_true, pred), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m["test_mse_x1e3"], 1e3 * m["test_mse_orig"] / (hi - lo) ** 2, rtol=1e-4)
    assert {"val_rmse_orig", "val_mae_orig", "val_r2"} <= set(m)
    # and the run prints them beside the paper's number
    assert "test in the label's units: MSE" in res.summary and "R^2" in res.summary


def test_result_files_without_the_new_metrics_still_read(tmp_path):
    old = fake_result("rsna", "nca", 0, 5.0)
    assert "test_r2" not in old["metrics"]
    assert read_result(put(tmp_path, old))["metrics"]["test_mse_x1e3"] == 5.0
    new = copy.deepcopy(old)
    new["metrics"].update(test_rmse_orig=2.0, test_mae_orig=1.5, test_r2=-0.3)  # R² below 0 is allowed
    check_result(new)
    for key, value in (("test_rmse_orig", -1.0), ("test_mae_orig", float("nan")), ("test_r2", float("inf"))):
        bad = copy.deepcopy(new)
        bad["metrics"][key] = value
        with pytest.raises(ResultError, match=f"metrics.{key}"):
            check_result(bad)
    final = copy.deepcopy(old)
    final["final"] = True
    for key in ("test_mse", "test_mse_x1e3", "test_mse_orig"):
        del final["metrics"][key]
    check_result(final)  # a final model has no test rows
    del final["final"]
    with pytest.raises(ResultError, match="metrics.test_mse"):
        check_result(final)
    with pytest.raises(ResultError, match="hit_epoch_cap"):
        check_result({**old, "hit_epoch_cap": "yes"})


def plant(root, values, key, heads=("linear", "nca")):
    """Results of one dataset: per head, splits 0..n-1 whose ``key`` metric is ``values[head][s]``."""
    for head in heads:
        for s, v in enumerate(values[head]):
            r = fake_result("rsna", head, s, 5.0 + s)
            r["metrics"][key] = v
            put(root, r)


def read_csv(path):
    with open(path, newline="") as f:
        return {row["head"]: row for row in csv.DictReader(f)}


def test_make_tables_metric_tables_another_field_and_keeps_table1(tmp_path, capsys):
    r2 = {"linear": [0.5 + 0.01 * s for s in range(10)], "nca": [0.6 + 0.01 * s for s in range(10)]}
    plant(tmp_path, r2, "test_r2")
    out = tmp_path / "tables"
    assert make_tables.main(["--results-root", str(tmp_path), "--out", str(out), "--no-tuning", "--metric", "r2"]) == 0
    rows = read_csv(out / "table1_r2.csv")
    assert float(rows["nca"]["mean"]) == pytest.approx(np.mean(r2["nca"]), rel=1e-9)
    assert rows["nca"]["best"] == "True" and rows["linear"]["best"] == "False"  # R²: higher is better
    md = (out / "table1_r2.md").read_text()
    assert "# Table 1: test R²" in md and "†" in md  # 10 of 10 splits higher than linear: p = 2/2¹⁰
    assert not (out / "table1.md").exists()  # the paper's Table 1 is not overwritten
    assert make_tables.main(["--results-root", str(tmp_path), "--out", str(out), "--no-tuning"]) == 0
    paper = read_csv(out / "table1.csv")
    assert float(paper["linear"]["mean"]) == pytest.approx(9.5) and paper["linear"]["best"] == "True"


def test_make_tables_metric_names_a_file_that_lacks_it(tmp_path, capsys):
    plant(tmp_path, {"linear": [1.0, 2.0]}, "test_rmse_orig", heads=("linear",))
    put(tmp_path, fake_result("rsna", "nca", 0, 5.0))  # an old file: no RMSE
    args = ["--results-root", str(tmp_path), "--out", str(tmp_path / "t"), "--no-tuning", "--metric", "rmse"]
    assert make_tables.main(args) == 1
    err = capsys.readouterr().err
    assert "no metrics.test_rmse_orig" in err and "split_0.json" in err and "force=true" in err
    assert make_tables.main([*args[:-1], "mse"]) == 0  # MSE in the label's units is in every file
    assert make_tables.main([*args, "--compare-paper"]) == 1
    assert "--compare-paper" in capsys.readouterr().err
