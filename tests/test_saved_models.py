"""One model format (issue 24, points 2, 4, 5, 7): SoftStepRegressor.save/load write and read the pipeline's saved
models, scripts/predict.py and --explain read either, explanations carry targets, weight share and effective
neighbours, saved files hold no absolute path, the reference set can be left out, and the estimator's threads,
verbosity and dtype."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.models import saved
from experiments.models.predict import PredictError, predict, readable_decimals
from experiments.protocol import pipeline
from softstep import SoftStepRegressor
from softstep.saved_schema import SavedModelError
from tests import fixtures_data as FD

pytestmark = pytest.mark.usefixtures("one_thread")


def houses(n=160, seed=0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric columns and a price that depends on them (a heavy-ish tail)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"area": rng.uniform(20, 200, n), "rooms": rng.integers(1, 6, n).astype(float)})
    df["age"] = rng.uniform(0, 80, n)
    y = 1e3 * df["area"] + 3e4 * df["rooms"] - 500 * df["age"] + rng.normal(0, 5e3, n)
    return df, y.to_numpy()


def run_cli(*args) -> tuple[int, list[str]]:
    from scripts.predict import main

    return main([str(a) for a in args])


def strings(value):
    """Every string in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


# ---------------------------------------------------------------- estimator → file → estimator and predict.py
@pytest.mark.parametrize("head", ["nca_i", "diffknn_g", "linear"])
def test_estimator_save_load_round_trip(tmp_path, head):
    X, y = houses()
    est = SoftStepRegressor(head=head, max_epochs=4, random_state=0).fit(X.to_numpy()[:120], y[:120])
    w, m = est.save(tmp_path / "model")
    assert (w.name, m.name) == ("model.safetensors", "model.json")
    again = SoftStepRegressor.load(tmp_path / "model.json")
    np.testing.assert_allclose(again.predict(X.to_numpy()[120:]), est.predict(X.to_numpy()[120:]), rtol=1e-12)
    sim, embed_dim, batch_size = est._settings()
    want = {"head": head, "similarity": sim, "embed_dim": embed_dim, "batch_size": batch_size, "dtype": "float32"}
    want |= {k: est.get_params()[k] for k in ("hidden", "max_epochs", "patience", "lr", "random_state")}
    assert {k: again.get_params()[k] for k in want} == want
    if head != "linear":
        i1, w1 = est.neighbors(X.to_numpy()[120:125], k=3)
        i2, w2 = again.neighbors(X.to_numpy()[120:125], k=3)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(w1, w2, rtol=1e-12)
    # the loaded model saves the same files again
    again.save(tmp_path / "again")
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads(m.read_text())


def test_estimator_save_predicts_and_explains_through_the_cli(tmp_path, capsys):
    """Fitted on a DataFrame: predict.py reads a CSV with those columns; --explain K lists each prediction's K
    rows of fit's X with their targets in y's units and weights, the weight share and 1/Σw²."""
    X, y = houses()
    est = SoftStepRegressor(head="nca_i", max_epochs=5, random_state=1).fit(X.iloc[:130], y[:130])
    est.save(tmp_path / "houses")
    X.iloc[130:].to_csv(tmp_path / "new.csv", index=False)
    assert (
        run_cli(tmp_path / "houses.json", "--input", tmp_path / "new.csv", "--out", tmp_path / "p.csv", "--explain", 3)
        == 0
    )
    out = pd.read_csv(tmp_path / "p.csv")
    decimals = readable_decimals(json.loads((tmp_path / "houses.json").read_text())["label"])  # the CSV's resolution
    np.testing.assert_allclose(out["prediction"], est.predict(X.iloc[130:]), rtol=1e-6, atol=0.5 * 10.0**-decimals)
    idx, wts = est.neighbors(X.iloc[130:], k=3)
    for k in range(3):
        np.testing.assert_array_equal(out[f"neighbor_{k + 1}"], idx[:, k])  # rows of fit's X
        np.testing.assert_allclose(out[f"target_{k + 1}"], y[idx[:, k]], rtol=1e-5)  # the rows' own labels
        np.testing.assert_allclose(out[f"weight_{k + 1}"], wts[:, k], rtol=1e-5)
    np.testing.assert_allclose(out["weight_share"], wts.sum(1), rtol=1e-5)
    z = est._embed(X.iloc[130:])
    full = est.model_.head.neighbor_weights(z, est.z_ref_).detach().double().numpy()
    np.testing.assert_allclose(out["effective_neighbors"], 1 / (full**2).sum(1), rtol=1e-5)
    assert ((out["effective_neighbors"] >= 1) & (out["effective_neighbors"] <= len(est.reference_indices_))).all()
    # --explain is capped at the reference set's size
    n_ref = len(est.reference_indices_)
    assert (
        run_cli(tmp_path / "houses", "--input", tmp_path / "new.csv", "--out", tmp_path / "q.csv", "--explain", 10**6)
        == 0
    )
    cols = pd.read_csv(tmp_path / "q.csv").columns
    assert f"neighbor_{n_ref}" in cols and f"neighbor_{n_ref + 1}" not in cols
    np.testing.assert_allclose(pd.read_csv(tmp_path / "q.csv")["weight_share"], 1, rtol=1e-6)


def test_explained_targets_are_the_training_labels_exactly(tmp_path):
    """Integer labels (as in sklearn's diabetes table) read back as themselves, not 48.000001 (float32 on [0, 1])."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True, scaled=False)
    est = SoftStepRegressor(head="nca_i", max_epochs=3, random_state=0).fit(X[:400], y[:400])
    est.save(tmp_path / "d")
    pd.DataFrame(X[400:], columns=[f"x{i}" for i in range(10)]).to_csv(tmp_path / "new.csv", index=False)
    out = predict(tmp_path / "d", tmp_path / "new.csv", explain=5)
    for k in range(1, 6):
        np.testing.assert_array_equal(out[f"target_{k}"], y[out[f"neighbor_{k}"].to_numpy(dtype=int)])


def test_an_estimator_fitted_on_an_array_names_its_columns_x0_x1(tmp_path):
    X, y = houses()
    est = SoftStepRegressor(head="nca", max_epochs=3, random_state=0).fit(X.to_numpy()[:100], y[:100])
    est.save(tmp_path / "m")
    pd.DataFrame(X.to_numpy()[100:], columns=["x0", "x1", "x2"]).to_csv(tmp_path / "new.csv", index=False)
    out = predict(tmp_path / "m.safetensors", tmp_path / "new.csv")
    np.testing.assert_allclose(out["prediction"], est.predict(X.to_numpy()[100:]), rtol=1e-6)
    X.iloc[100:].to_csv(tmp_path / "named.csv", index=False)
    with pytest.raises(PredictError, match="no column 'x0'"):
        predict(tmp_path / "m", tmp_path / "named.csv")
    assert not hasattr(SoftStepRegressor.load(tmp_path / "m"), "feature_names_in_")


def test_pickling_the_estimator_keeps_working(tmp_path):
    X, y = houses()
    est = SoftStepRegressor(head="diffknn_i", max_epochs=3, random_state=0).fit(X.iloc[:100], y[:100])
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X.iloc[100:]), est.predict(X.iloc[100:]))
    est.save(tmp_path / "m")
    loaded = pickle.loads(pickle.dumps(SoftStepRegressor.load(tmp_path / "m")))
    np.testing.assert_allclose(loaded.predict(X.iloc[100:]), est.predict(X.iloc[100:]), rtol=1e-12)


def test_a_tampered_estimator_save_runs_no_stored_code(tmp_path):
    X, y = houses()
    SoftStepRegressor(head="nca", max_epochs=2, random_state=0).fit(X.iloc[:60], y[:60]).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m.json").read_text())
    marker = tmp_path / "pwned"
    meta["config"]["head"]["module"] = {"_target_": "os.system", "command": f"touch {marker}"}
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(SavedModelError, match=r"m\.json: field config\.head\.module\._target_"):
        SoftStepRegressor.load(tmp_path / "m")
    assert not marker.exists()


# ---------------------------------------------------------------- pipeline model → estimator
@pytest.fixture
def numeric_run(tiny, tmp_path):
    """A saved nca_i table run on numeric columns (houses.csv in tmp_path); returns (run dir, frame, target)."""
    X, y = houses(n=120)
    X.assign(price=y).to_csv(tmp_path / "houses.csv", index=False)
    cfg = tiny(
        "dataset=table",
        f"dataset.loader.path={tmp_path / 'houses.csv'}",
        "dataset.loader.target=price",
        "dataset.loader.features=all",
        "head=nca_i",
        "splits=[0]",
    )
    return pipeline.run(cfg).key.dir, X, y


def test_a_pipeline_model_loads_as_an_estimator(numeric_run, tmp_path):
    run_dir, X, y = numeric_run
    est = SoftStepRegressor.load(run_dir / "models" / "model_0.json")
    via_cli = predict(run_dir, tmp_path / "houses.csv", split=0)["prediction"].to_numpy()
    np.testing.assert_allclose(est.predict(X), via_cli, rtol=1e-5)
    assert list(est.feature_names_in_) == ["area", "rooms", "age"] and est.get_params()["head"] == "nca_i"
    items = json.loads((run_dir / "models" / "model_0.json").read_text())["reference_items"]
    np.testing.assert_array_equal(est.reference_indices_, items)  # the table's row numbers
    idx, _ = est.neighbors(X.iloc[:4], k=2)
    explained = predict(run_dir, tmp_path / "houses.csv", split=0, explain=2).iloc[:4]
    np.testing.assert_array_equal(idx[:, 0], explained["neighbor_1"])
    np.testing.assert_allclose(explained["target_1"], y[idx[:, 0]], rtol=1e-5)  # the training file's own label


def test_a_pipeline_model_with_categorical_columns_loads_in_the_estimator(tiny, tmp_path):
    X, y = houses(n=80)
    X.assign(city=np.where(X["rooms"] > 2, "oslo", "bergen"), price=y).to_csv(tmp_path / "h.csv", index=False)
    cfg = tiny(
        "dataset=table",
        f"dataset.loader.path={tmp_path / 'h.csv'}",
        "dataset.loader.target=price",
        "dataset.loader.features=all",
        "head=nca",
        "splits=[0]",
    )
    run_dir = pipeline.run(cfg).key.dir
    est = SoftStepRegressor.load(run_dir / "models" / "model_0")  # issue 29: one encoding for both
    rows = pd.read_csv(tmp_path / "h.csv").drop(columns="price")
    via_cli = predict(run_dir, tmp_path / "h.csv", split=0)["prediction"].to_numpy()
    np.testing.assert_allclose(est.predict(rows), via_cli, rtol=1e-5)


def test_an_estimator_with_categorical_columns_saves_loads_and_predicts_through_the_cli(tmp_path):
    X, y = houses(n=120)
    X = X.assign(city=np.where(X["rooms"] > 2, "oslo", "bergen"))
    est = SoftStepRegressor(head="nca_i", max_epochs=3, random_state=0).fit(X.iloc[:100], y[:100])
    est.save(tmp_path / "m")
    again = SoftStepRegressor.load(tmp_path / "m")
    assert again.categories_ == est.categories_ == {"city": ["bergen", "oslo"]}
    np.testing.assert_array_equal(again.predict(X.iloc[100:]), est.predict(X.iloc[100:]))
    X.iloc[100:].to_csv(tmp_path / "new.csv", index=False)
    out = predict(tmp_path / "m.json", tmp_path / "new.csv")
    np.testing.assert_allclose(out["prediction"], est.predict(X.iloc[100:]), rtol=1e-5)


# ---------------------------------------------------------------- privacy: relative paths, reference set left out
def test_a_saved_table_model_holds_no_absolute_path(numeric_run, tmp_path):
    run_dir, _, _ = numeric_run
    text = (run_dir / "models" / "model_0.json").read_text()
    meta = json.loads(text)
    assert str(tmp_path) not in text and not [s for s in strings(meta) if os.path.isabs(s) or s.startswith("~")]
    assert meta["config"]["dataset"]["loader"]["path"] == "houses.csv"  # relative to the dataset root


def test_a_saved_image_model_names_its_training_files_relative_to_the_root(tmp_path):
    from experiments.protocol.compose import compose

    files = [f"{'ab'[k % 2]}/{k}.png" for k in range(20)]
    root = FD.labelled_image_folder(tmp_path / "imgs", files, size=(16, 16))
    cfg = compose(
        [
            "dataset=image_folder",
            f"dataset.loader.root={root}",
            "dataset.loader.size=32",
            "extractor.finetune=false",
            "extractor.builder.source=random",
            "head=nca",
            "splits=[0]",
            "trainer.max_epochs=1",
            "trainer.workers=1",
            f"paths.results_root={tmp_path}/results",
            f"paths.cache_dir={tmp_path}/cache",
            "progress=false",
        ]
    )
    run_dir = pipeline.run(cfg).key.dir
    text = (run_dir / "models" / "model_0.json").read_text()
    meta = json.loads(text)
    assert str(tmp_path) not in text and not [s for s in strings(meta) if os.path.isabs(s) or s.startswith("~")]
    assert set(meta["reference_items"]) <= set(files) and len(meta["reference_items"]) > 5
    FD.write_image(tmp_path / "new" / "q.png", (16, 16), "RGB", 99)
    out = predict(run_dir, tmp_path / "new", split=0, explain=2)
    assert out["neighbor_1"].iloc[0] in files
    assert np.isclose(out["target_1"].iloc[0], files.index(out["neighbor_1"].iloc[0]), atol=1e-4)  # its labels.csv row


def test_the_reference_set_can_be_left_out(tmp_path, capsys):
    X, y = houses()
    est = SoftStepRegressor(head="nca_i", max_epochs=3, random_state=0).fit(X.iloc[:120], y[:120])
    est.save(tmp_path / "weights", reference=False)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "weights.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if not k.startswith("model.")]
    assert json.loads((tmp_path / "weights.json").read_text())["reference_items"] is None
    bare = SoftStepRegressor.load(tmp_path / "weights")
    with pytest.raises(ValueError, match="no reference set.*set_reference"):
        bare.predict(X.iloc[120:])
    rows = est.reference_indices_
    bare.set_reference(X.iloc[rows], y[rows])
    np.testing.assert_allclose(bare.predict(X.iloc[120:]), est.predict(X.iloc[120:]), rtol=1e-5)
    X.iloc[120:].to_csv(tmp_path / "new.csv", index=False)
    capsys.readouterr()
    code = run_cli(tmp_path / "weights.json", "--input", tmp_path / "new.csv", "--out", tmp_path / "p.csv")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "without its reference set" in err[0], err
    assert not (tmp_path / "p.csv").exists()


def test_save_model_weights_drops_the_reference_set(tiny, tmp_path):
    X, y = houses(n=100)
    X.assign(price=y).to_csv(tmp_path / "h.csv", index=False)
    table = ("dataset=table", f"dataset.loader.path={tmp_path / 'h.csv'}", "dataset.loader.target=price")
    run_dir = pipeline.run(tiny(*table, "dataset.loader.features=all", "splits=[0]", "save_model=weights")).key.dir
    m = saved.load_model(run_dir, 0)
    assert m.z_ref is None and m.meta["reference_items"] is None
    with pytest.raises(SavedModelError, match="without its reference set"):
        predict(run_dir, tmp_path / "h.csv", split=0)


# ---------------------------------------------------------------- threads, verbose, dtype
def test_n_jobs_sets_torch_threads_for_the_call_and_restores_them(monkeypatch):
    import softstep.estimator as E

    X, y = houses(n=60)
    seen = []
    real_fit = E.fit

    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        return real_fit(*a, **k)

    monkeypatch.setattr(E, "fit", spy)
    torch.set_num_threads(3)
    est = SoftStepRegressor(head="nca", max_epochs=2, random_state=0).fit(X, y)  # n_jobs=None: one thread
    assert seen == [1] and torch.get_num_threads() == 3
    est.set_params(n_jobs=2).fit(X, y)
    assert seen[-1] == 2 and torch.get_num_threads() == 3
    real_predict = est.model_.head.predict
    est.model_.head.predict = lambda *a, **k: (seen.append(torch.get_num_threads()), real_predict(*a, **k))[1]
    est.predict(X)
    assert seen[-1] == 2 and torch.get_num_threads() == 3

    def boom(*a, **k):
        raise RuntimeError("stop")

    monkeypatch.setattr(E, "fit", boom)
    with pytest.raises(RuntimeError, match="stop"):
        SoftStepRegressor(n_jobs=1, max_epochs=1).fit(X, y)
    assert torch.get_num_threads() == 3  # restored after a failure too
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs must be"):
            SoftStepRegressor(n_jobs=bad).fit(X, y)


def test_verbose_prints_each_epoch_with_its_time(capsys):
    X, y = houses(n=60)
    SoftStepRegressor(head="nca", max_epochs=3, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""
    est = SoftStepRegressor(head="nca", max_epochs=3, patience=5, random_state=0, verbose=1).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val MSE" in line and line.endswith(" s") for line in lines[:3])
    assert (
        "3 epochs in" in lines[3]
        and "s per epoch" in lines[3]
        and f"best epoch {est.best_epoch_ + 1} of 3 (best_epoch_ = {est.best_epoch_}," in lines[3]
    )
    assert all(h["epoch_time_s"] >= 0 for h in est.history_)


def test_float32_unless_asked():
    X, y = houses(n=100)
    a = SoftStepRegressor(head="nca_i", max_epochs=3, random_state=0).fit(X.iloc[:80], y[:80])
    b = SoftStepRegressor(head="nca_i", max_epochs=3, random_state=0, dtype="float64").fit(X.iloc[:80], y[:80])
    assert {p.dtype for p in a.model_.parameters()} == {torch.float32} and a.z_ref_.dtype == torch.float32
    assert {p.dtype for p in b.model_.parameters()} == {torch.float64} and b.z_ref_.dtype == torch.float64
    assert a.predict(X.iloc[80:]).dtype == np.float64  # returned as NumPy float64 either way
    np.testing.assert_allclose(a.predict(X.iloc[80:]), b.predict(X.iloc[80:]), rtol=1e-3)
    with pytest.raises(ValueError, match="dtype must be one of float32, float64"):
        SoftStepRegressor(dtype="half").fit(X, y)


def test_a_float64_estimator_round_trips_in_float64(tmp_path):
    X, y = houses(n=100)
    b = SoftStepRegressor(head="diffknn_g", max_epochs=2, random_state=0, dtype="float64").fit(X.iloc[:80], y[:80])
    b.save(tmp_path / "f64")
    back = SoftStepRegressor.load(tmp_path / "f64")
    assert back.dtype == "float64" and back.z_ref_.dtype == torch.float64
    np.testing.assert_allclose(back.predict(X.iloc[80:]), b.predict(X.iloc[80:]), rtol=1e-12)
    X.iloc[80:].to_csv(tmp_path / "new.csv", index=False)
    np.testing.assert_allclose(
        predict(tmp_path / "f64", tmp_path / "new.csv")["prediction"], b.predict(X.iloc[80:]), rtol=1e-6
    )


def test_missing_files_are_one_clear_error(tmp_path):
    with pytest.raises(SavedModelError, match="no such file"):
        SoftStepRegressor.load(tmp_path / "nothing")
    with pytest.raises(PredictError, match="no such run folder .* or saved model"):
        predict(tmp_path / "nothing", tmp_path / "x.csv")
    assert Path(tmp_path / "nothing").exists() is False


def test_fit_predicts_from_every_row_it_was_given_as_the_final_model_does():
    """Trained on 85 % with early stopping on 15 %, and all rows (both parts) are the reference set."""
    X, y = houses(n=100)
    est = SoftStepRegressor(head="nca", max_epochs=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(est.reference_indices_, np.arange(100))
    assert est.z_ref_.shape[0] == 100
    np.testing.assert_allclose(est.y_ref_.numpy() * est.y_span_ + est.y_lo_, y, rtol=1e-5)  # val rows' labels too


@pytest.mark.parametrize("how", [True, "log1p"])
def test_a_log_target_model_predicts_in_the_target_units(tmp_path, how):
    """A pipeline model whose label is ln(target) or ln(1 + target): the estimator and predict.py undo it."""
    X, y = houses(n=80)
    est = SoftStepRegressor(head="nca", max_epochs=2, random_state=0).fit(X, y / 1e5)
    est.save(tmp_path / "m")
    label = est.predict(X)
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["label"]["log_target"] = how
    (tmp_path / "m.json").write_text(json.dumps(meta))
    want = np.exp(label) if how is True else np.expm1(label)
    np.testing.assert_allclose(SoftStepRegressor.load(tmp_path / "m").predict(X), want, rtol=1e-12)
    X.to_csv(tmp_path / "x.csv", index=False)
    out = predict(tmp_path / "m", tmp_path / "x.csv", explain=1)
    np.testing.assert_allclose(
        out["target_1"], (np.exp if how is True else np.expm1)(y / 1e5)[out["neighbor_1"]], rtol=1e-4
    )
