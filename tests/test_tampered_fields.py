"""Issue 28's tampered fields (findings 5, 6, 13, 14), each reproduced on a saved table model: a field changed in
the JSON is one line naming it, never a traceback, a silent change of the predictions, a large allocation or a
string from the file printed raw. The seal binds the JSON to its tensors, not the JSON's own fields, so each field
is checked by itself."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from scripts import predict as predict_script
from softstep import SoftStepRegressor
from softstep.saved_fields import SavedModelError
from softstep.saved_seal import reseal
from tests.test_reliability import _flats, saved_run  # noqa: F401 - the fixture and its table

MODULE = ["config", "head", "module"]


def _set(path, value):
    def change(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            node.pop(path[-1])
        else:
            node[path[-1]] = value

    return change


DELETE = object()


def _items(value):
    def change(meta):
        meta["reference_items"][0] = value

    return change


def _sizes(meta):
    meta["config"]["model"].update(hidden=65536, embed_dim=65536)
    meta["config"]["head"]["module"]["embed_dim"] = 65536


def _rename_feature(new):
    def change(meta):
        meta["features"]["numeric"][new] = meta["features"]["numeric"].pop("area")

    return change


CASES = {  # finding: (change, the field the one line must name)
    "5 duplicate reference items": (
        lambda m: m.update(reference_items=[m["reference_items"][0]] * len(m["reference_items"])),
        "reference_items",
    ),
    "6 similarity deleted": (_set([*MODULE, "similarity"], DELETE), "config.head.module.similarity"),
    "6 gamma deleted": (_set([*MODULE, "gamma"], DELETE), "config.head.module.gamma"),
    "6 gamma true": (_set([*MODULE, "gamma"], True), "gamma"),
    "6 gamma 1e30": (_set([*MODULE, "gamma"], 1e30), "gamma"),
    "6 step deleted (nca_i becomes nca)": (_set([*MODULE, "step"], DELETE), "config.head.module.step"),
    "6 another head's class": (_set([*MODULE, "_target_"], "softstep.DiffKNNHead"), "config.head.module._target_"),
    "13 features against in_dim": (_set(["in_dim"], 4), "in_dim"),
    "13 _target_ a list": (_set([*MODULE, "_target_"], ["softstep.NCAHead"]), "config.head.module._target_"),
    "13 _target_ a dict": (_set([*MODULE, "_target_"], {"a": 1}), "config.head.module._target_"),
    "13 reference item 1e30": (_items(10**30), "reference_items"),
    "13 reference item 2**63": (_items(2**63), "reference_items"),
    "13 reference items strings": (
        lambda m: m.update(reference_items=list(map(str, m["reference_items"]))),
        "reference_items",
    ),
    "13 integer variance 10**30": (_set(["features", "numeric", "area"], [1.0, 10**30]), "features.numeric.area[1]"),
    "3 a mean beyond float32": (_set(["features", "numeric", "area"], [1e300, 1.0]), "features.numeric.area[0]"),
    "3 a negative variance": (_set(["features", "numeric", "area"], [1.0, -2.0]), "features.numeric.area[1]"),
    "13 extractor_saved on a table": (_set(["extractor_saved"], True), "extractor_saved"),
    "13 NUL in a feature name": (_rename_feature("ar\x00ea"), "features.ar\\x00ea"),
    "13 hidden = embed_dim = 65536": (_sizes, "config.model.hidden"),
    "13 a category twice": (_set(["features", "categorical", "city"], ["oslo", "oslo"]), "features.categorical.city"),
    "13 a column numeric and categorical": (
        lambda m: m["features"]["categorical"].update(area=["1"]),
        "features.categorical.area",
    ),
    "13 label range overflows": (_set(["label"], {"lo": -1e308, "hi": 1e308, "log_target": False}), "label.hi"),
    "13 log label whose exp overflows": (_set(["label"], {"lo": 0, "hi": 1e30, "log_target": True}), "label.hi"),
    "14 escape in a top-level key": (lambda m: m.update({"x\x1b[2J\nforged": 1}), "field x\\x1b[2J\\nforged"),
    "14 escape in features.numeric": (_rename_feature("a\x1b[2J\nforged"), "features.a\\x1b[2J\\nforged"),
    "14 escape in config.head.module": (_set([*MODULE, "_target_"], "x\x1b[2J\nforged"), "config.head.module._target_"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_tampered_field_is_one_line_naming_it(saved_run, tmp_path, capsys, case):  # noqa: F811
    run_dir, table = saved_run
    change, field = CASES[case]
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    meta_file = copy / "models" / "model_0.json"
    meta = json.loads(meta_file.read_text())
    change(meta)
    meta_file.write_text(json.dumps(meta))
    capsys.readouterr()
    code = predict_script.main([str(copy), "--input", str(table), "--out", str(tmp_path / "p.csv"), "--explain", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "\x1b" not in err, err
    assert field in err and not (tmp_path / "p.csv").exists(), err


def test_finding_6_weights_a_float32_cannot_compute_with_are_refused(saved_run, tmp_path, capsys):  # noqa: F811
    run_dir, table = saved_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    weights = copy / "models" / "model_0.safetensors"
    tensors = load_file(str(weights))
    tensors["model.mlp.0.weight"][0, 0] = 3e38  # finite, and inf once multiplied
    save_file(tensors, str(weights))
    reseal(weights)  # sealed as it is: the seal says nothing of what the tensors hold
    capsys.readouterr()
    code = predict_script.main([str(copy), "--input", str(table), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "model.mlp.0.weight" in err and "beyond" in err, err


@pytest.fixture(scope="module")
def estimator_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    est = SoftStepRegressor(head="nca_i", max_epochs=2, random_state=0).fit(X, X.sum(1))
    path = tmp_path_factory.mktemp("est") / "m"
    est.save(path)
    return path


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda m: m.update(reference_items=list(map(str, m["reference_items"]))), "reference_items"),
        (lambda m: m.update(modality="ta\x1b[2J\nble"), "ta\\x1b[2J\\nble"),
    ],
)
def test_finding_13_14_the_estimator_loads_no_tampered_field(estimator_file, tmp_path, change, field):
    copy = tmp_path / "m"
    for suffix in (".json", ".safetensors"):
        shutil.copy(estimator_file.with_suffix(suffix), copy.with_suffix(suffix))
    meta = json.loads(copy.with_suffix(".json").read_text())
    change(meta)
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(SavedModelError) as e:
        SoftStepRegressor.load(copy)
    assert field in str(e.value) and "\n" not in str(e.value) and "\x1b" not in str(e.value)
