"""A final model (``final=true``): one model on every labelled row, saved where no table reads it, and the model
``scripts/predict.py`` prefers; the ``log1p`` target transform it may be trained with."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from data import table
from data.base import DataError
from experiments.models import saved
from experiments.models.predict import PredictError, choose_models, predict, readable_decimals
from experiments.protocol import pipeline
from experiments.protocol.splits import final_split
from experiments.store.results import read_result, read_results
from scripts import make_tables
from scripts import predict as predict_cli


def counts(path, n=150, seed=0) -> pd.DataFrame:
    """A table whose target is a count with zeros (a third of the rows), depending on two numeric and one
    categorical column."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "shop": rng.choice(["x", "y"], n)})
    df["sold"] = np.maximum(0, np.round(3 * df["a"] + df["b"] + 2 * (df["shop"] == "x"))).astype(int)
    df.to_csv(path, index=False)
    return df


@pytest.fixture
def table_run(tiny, tmp_path):
    counts(tmp_path / "sold.csv")
    return lambda *overrides: tiny(
        "dataset=table",
        f"dataset.loader.path={tmp_path / 'sold.csv'}",
        "dataset.loader.target=sold",
        "dataset.loader.features=all",
        "dataset.name=shops",
        *overrides,
    )


def test_final_split_uses_every_row_once_and_has_no_test_rows():
    y = np.random.default_rng(1).gamma(2.0, size=403)
    train, val, test = final_split(y, seed=0)
    assert len(test) == 0 and len(val) == math.ceil(0.15 * 403)  # as train_test_split rounds
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(403))
    again = final_split(y, seed=0)
    assert all((a == b).all() for a, b in zip((train, val), again[:2]))  # deterministic
    assert not (final_split(y, seed=1)[1] == val).all()


def test_a_final_model_trains_on_every_row_saves_apart_and_predict_prefers_it(table_run, tiny, tmp_path, capsys):
    df = pd.read_csv(tmp_path / "sold.csv")
    splits = pipeline.run(table_run("head=nca", "splits=[0]"))
    res = pipeline.run(table_run("head=nca", "final=true"))
    run_dir = splits.key.dir
    assert res.key.dir == run_dir / "final" and res.key.run_id == splits.key.run_id  # final: not in the run id

    record = read_result(res.key.split_path(0))
    assert record["final"] is True and record["n_test"] == 0
    assert record["n_train"] + record["n_val"] == len(df) == record["n_reference"]
    assert not any(k.startswith("test_") for k in record["metrics"])
    assert {"val_mse_x1e3", "val_rmse_orig", "val_mae_orig", "val_r2"} <= set(record["metrics"])
    assert "final model" in res.summary and "validation" in res.summary
    # the tables and the store's reader see the 10-split protocol's results only
    assert [r["_path"] for r in read_results(tiny.results)] == [str(splits.key.split_path(0))]
    assert make_tables.main(["--results-root", str(tiny.results), "--out", str(tmp_path / "t"), "--no-tuning"]) == 0
    assert "(n=1)" in (tmp_path / "t" / "table1.md").read_text()

    # its saved model: one, with every labelled row as the reference set
    model = saved.load_model(res.key.dir, 0)
    assert sorted(model.meta["reference_items"]) == list(range(len(df))) and len(model.y_ref) == len(df)

    # predict.py: the final model by default, the splits on request; each says which it uses
    assert choose_models(run_dir) == (run_dir / "final", [0])
    assert choose_models(run_dir, "splits") == (run_dir, [0])
    new = tmp_path / "new.csv"
    df.drop(columns=["sold"]).iloc[:7].to_csv(new, index=False)
    capsys.readouterr()
    assert (
        predict_cli.main([str(run_dir), "--input", str(new), "--out", str(tmp_path / "p.csv"), "--explain", "3"]) == 0
    )
    assert "using the final model" in capsys.readouterr().out
    out = pd.read_csv(tmp_path / "p.csv")
    assert len(out) == 7 and {"prediction", "neighbor_1", "weight_3"} <= set(out.columns)
    z = model.embed(torch.from_numpy(model.preprocessor.transform(df.drop(columns=["sold"]).iloc[:7])))
    by_hand = model.to_label_units(model.predict_scaled(z).double().numpy())  # no log_target: the label is the target
    decimals = readable_decimals(model.meta["label"])  # the CSV's resolution (a ten-thousandth of the range)
    np.testing.assert_allclose(out["prediction"], by_hand, rtol=1e-6, atol=0.5 * 10.0**-decimals)
    assert (
        predict_cli.main([str(run_dir), "--split", "splits", "--input", str(new), "--out", str(tmp_path / "q.csv")])
        == 0
    )
    assert "using the saved model of split 0" in capsys.readouterr().out

    # a rerun skips it, in one line
    capsys.readouterr()
    pipeline.run(table_run("head=nca", "final=true"))
    assert "the final model is done already" in capsys.readouterr().err


def test_predict_without_a_final_model_says_so(table_run):
    res = pipeline.run(table_run("head=nca", "splits=[0]"))
    assert choose_models(res.key.dir) == (res.key.dir, [0])
    with pytest.raises(PredictError, match="no final model.*final=true"):
        choose_models(res.key.dir, "final")


def test_log1p_takes_zeros_and_predictions_come_back_in_the_targets_units(table_run, tmp_path):
    df = pd.read_csv(tmp_path / "sold.csv")
    assert (df["sold"] == 0).sum() > 20
    data = table.load(str(tmp_path / "sold.csv"), target="sold", features="all", log_target="log1p")
    np.testing.assert_allclose(data.labels, np.log1p(df["sold"].to_numpy(float)), rtol=1e-12)
    with pytest.raises(DataError, match="log1p"):  # ln of a zero: the message offers log1p
        table.load(str(tmp_path / "sold.csv"), target="sold", features="all", log_target=True)
    with pytest.raises(DataError, match="log_target"):
        table.load(str(tmp_path / "sold.csv"), target="sold", features="all", log_target="sqrt")
    plain = table.load(str(tmp_path / "sold.csv"), target="sold", features="all")
    assert plain.preprocessing != data.preprocessing  # another label: another feature cache and data digest

    res = pipeline.run(table_run("head=nca", "final=true", "dataset.loader.log_target=log1p"))
    model = saved.load_model(res.key.dir, 0)
    assert model.meta["label"]["log_target"] == "log1p"
    out = predict(res.key.run_dir, tmp_path / "sold.csv")
    z = model.embed(torch.from_numpy(model.preprocessor.transform(df.drop(columns=["sold"]))))
    label = model.to_label_units(model.predict_scaled(z).double().numpy())
    np.testing.assert_allclose(out["prediction"], np.expm1(label), rtol=1e-6)
    assert (out["prediction"] > -1).all()
