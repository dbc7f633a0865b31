"""Issue 28's new rows (findings 7, 10, 16), each reproduced: predict and the estimator say, with counts, when new
rows hold unseen categories, a file is not UTF-8, or a value lies orders of magnitude beyond the training spread;
a value the head cannot represent is one line naming its row and column; text labels are one clear error."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from scripts import predict as predict_script
from softstep import SoftStepRegressor
from tests.test_reliability import _flats, saved_run  # noqa: F401 - the fixture and its table


def _predict(run_dir, table, tmp_path, capsys):
    capsys.readouterr()
    code = predict_script.main([str(run_dir), "--input", str(table), "--out", str(tmp_path / "p.csv")])
    return code, capsys.readouterr().err.strip().splitlines()


def test_finding_7_unseen_categories_are_counted(saved_run, tmp_path, capsys):  # noqa: F811
    run_dir, table = saved_run
    rows = pd.read_csv(table)
    rows.loc[:2, "city"] = "paris"
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, err = _predict(run_dir, tmp_path / "new.csv", tmp_path, capsys)
    assert code == 0 and len(err) == 1, err
    assert f"3 of {len(rows)} rows have a category in column 'city' the model never saw" in err[0]
    assert "'paris'" in err[0]


def test_finding_7_a_latin_1_file_is_named(saved_run, tmp_path, capsys):  # noqa: F811
    run_dir, table = saved_run
    rows = pd.read_csv(table).assign(city="bergen")
    rows.loc[0, "city"] = "bérgen"
    (tmp_path / "new.csv").write_bytes(rows.to_csv(index=False).encode("latin-1"))
    code, err = _predict(run_dir, tmp_path / "new.csv", tmp_path, capsys)
    assert code == 0 and any("is not UTF-8; read as latin-1" in line for line in err), err
    assert any(f"1 of {len(rows)} rows have a category" in line for line in err), err


@pytest.mark.parametrize("cell", ["1e30", "1" * 30])
def test_finding_10_a_value_the_head_cannot_represent_is_one_line(saved_run, tmp_path, capsys, cell):  # noqa: F811
    run_dir, table = saved_run
    text = table.read_text().splitlines()
    first = text[1].split(",")
    first[0] = cell  # area, the first column
    (tmp_path / "new.csv").write_text("\n".join([text[0], ",".join(first), *text[2:]]) + "\n")
    code, err = _predict(run_dir, tmp_path / "new.csv", tmp_path, capsys)
    errors = [line for line in err if "error" in line]
    assert code == 2 and len(errors) == 1 and "Traceback" not in "\n".join(err), err
    assert "row 0 (0-based): column 'area'" in errors[0] and "can represent" in errors[0]
    assert any("1 of" in line and "training standard deviations" in line for line in err)  # the warning came first


def test_values_far_beyond_the_training_spread_are_counted(saved_run, tmp_path, capsys):  # noqa: F811
    run_dir, table = saved_run
    rows = pd.read_csv(table)
    rows.loc[[4, 7], "area"] = 1e7  # about 2e5 standard deviations out: representable, far outside
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, err = _predict(run_dir, tmp_path / "new.csv", tmp_path, capsys)
    assert code == 0 and len(err) == 1 and f"2 of {len(rows)} rows have a value over 1e+03" in err[0], err
    assert "column 'area': 2 rows, e.g. row 4" in err[0]


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    return SoftStepRegressor(head="nca_i", max_epochs=2, random_state=0).fit(X, X.sum(axis=1).to_numpy()), X


def test_the_estimator_warns_of_far_values_and_names_an_unrepresentable_one(fitted):
    est, X = fitted
    far = X.copy()
    far.loc[[1, 5], "b"] = 1e5
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert np.isfinite(est.predict(far)).all()
    lines = [str(w.message) for w in seen if issubclass(w.category, UserWarning)]
    assert any(f"2 of {len(X)} rows have a value over 1e+03" in line and "column 'b'" in line for line in lines)
    far.loc[3, "c"] = 1e30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"row 3 \(0-based\): column 'c' is 1e\+30"):
            est.predict(far)
        with pytest.raises(ValueError, match=r"row 3 \(0-based\): column 'c'"):
            est.neighbors(far, k=2)


def test_finding_16_text_labels_are_one_clear_error(fitted):
    _, X = fitted
    with pytest.raises(ValueError, match=r"convert them first \(y.astype\(float\)\)"):
        SoftStepRegressor(max_epochs=1).fit(X, X.sum(axis=1).to_numpy().astype(str))


def test_issue_29_predictions_are_written_to_the_label_ranges_resolution(saved_run, tmp_path, capsys):  # noqa: F811
    """A price range of 20,000 to 250,000 is written in whole units (18299, not 18299.01); predict() keeps them all."""
    from experiments.models.predict import predict, readable_decimals

    assert readable_decimals({"lo": 2e4, "hi": 2.5e5, "log_target": False}) == 0
    assert readable_decimals({"lo": 1.0, "hi": 5.0, "log_target": False}) == 4
    assert readable_decimals({"lo": 0.0, "hi": float(np.log(100.0)), "log_target": True}) == 3  # 1 to 100 in units
    run_dir, table = saved_run
    code, _ = _predict(run_dir, table, tmp_path, capsys)
    written = pd.read_csv(tmp_path / "p.csv")["prediction"]
    full = predict(run_dir, table)["prediction"]
    assert code == 0 and written.dtype == np.int64 and (written == full.round().astype(np.int64)).all()
    assert not (full == full.round()).all()  # the API's predictions keep their digits
