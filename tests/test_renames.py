"""Names renamed by issue 31 keep working for one release, with a DeprecationWarning: a head's ``softstep`` argument
(now ``step``), ``softstep.saved_format.load``/``write`` (now ``read_model``/``write_model``); and weights saved
under NCAHead's old attribute name (``softstep.*``, now ``step.*``) load from a state dict, a saved model's file and
a training checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softstep import DiffKNNHead, NCAHead, build_head, saved_format
from softstep.heads import head_module
from softstep.model import Regressor
from softstep.saved_schema import MODEL_FORMAT


@pytest.mark.parametrize("cls, mode", [(NCAHead, "instance"), (NCAHead, None), (DiffKNNHead, "instance")])
def test_the_old_step_keyword_still_builds_the_same_head_with_a_warning(cls, mode):
    torch.manual_seed(0)
    new = cls(4, "l2", step=mode)
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match=r"\(softstep=\.\.\.\) is now .*\(step=\.\.\.\)"):
        old = cls(4, "l2", softstep=mode)
    assert list(old.state_dict()) == list(new.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))


def test_both_names_of_the_step_argument_at_once_is_an_error():
    with pytest.raises(TypeError, match="give step only"), pytest.warns(DeprecationWarning):
        NCAHead(4, step="global", softstep="instance")


@pytest.mark.parametrize("old, new", [("load", "read_model"), ("write", "write_model")])
def test_the_old_saved_format_names_warn_and_are_the_new_functions(old, new):
    with pytest.warns(DeprecationWarning, match=f"saved_format.{old} is now softstep.saved_format.{new}"):
        assert getattr(saved_format, old) is getattr(saved_format, new)
    with pytest.raises(AttributeError):
        saved_format.no_such_name  # noqa: B018


def old_keys(state: dict, prefix: str) -> dict:
    """``state`` as it was saved before NCAHead's ``softstep`` submodule was renamed ``step``."""
    return {k.replace(f"{prefix}step.", f"{prefix}softstep.", 1): v for k, v in state.items()}


def test_an_nca_state_dict_saved_under_the_old_name_loads():
    torch.manual_seed(0)
    head = build_head("nca_i", 4)
    state = old_keys(head.state_dict(), "")
    assert "softstep.params.linear.weight" in state
    fresh = build_head("nca_i", 4)
    fresh.load_state_dict(state)  # strict: every key found
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), head.state_dict().values()))
    model = Regressor(3, 8, 4, build_head("nca_g", 4))
    Regressor(3, 8, 4, build_head("nca_g", 4)).load_state_dict(old_keys(model.state_dict(), "head."))


def test_a_saved_model_file_with_the_old_tensor_names_reads(tmp_path):
    from safetensors.torch import load_file, save_file

    from softstep.saved_seal import reseal

    torch.manual_seed(0)
    model = Regressor(3, 8, 4, build_head("nca_i", 4))
    with torch.no_grad():
        model.head.step.params.linear.bias.fill_(0.25)
    meta = {
        "format_version": MODEL_FORMAT,
        "head": "nca_i",
        "in_dim": 3,
        "label": {"lo": 0.0, "hi": 1.0, "log_target": False},
        "features": None,
        "reference_items": [0, 1],
        "config": {
            "head": {"name": "nca_i", "module": head_module("nca_i", 4, "l2")},
            "model": {"arch": "mlp", "hidden": 8, "embed_dim": 4, "dropout": 0.0},
        },
    }
    w, m = saved_format.write_model(tmp_path / "m", model, meta, (torch.zeros(2, 4), torch.tensor([0.1, 0.9])))
    save_file(old_keys(load_file(w), "model.head."), w)
    reseal(m)  # a file of the old names, sealed as the files of a model saved then were re-sealed
    assert "model.head.softstep.params.linear.bias" in load_file(w)
    back = saved_format.read_model(m)
    assert torch.equal(back.model.head.step.params.linear.bias, model.head.step.params.linear.bias)


def test_a_checkpoint_with_the_old_weight_names_resumes():
    from softstep import training
    from softstep.training_types import TensorInputs, TrainerSettings

    class InMemory:
        state = None

        def load(self, device):
            return self.state

        def save(self, state):
            self.state = {**state, "model": old_keys(state["model"], "head."), "best_state": None}

        def reject(self, why):
            raise AssertionError(f"rejected: {why}")

    x, y = torch.randn(40, 3), np.random.default_rng(0).random(40)
    s = TrainerSettings(max_epochs=2, patience=5, batch_size=8, lr=1e-2)
    ck = InMemory()
    torch.manual_seed(0)
    model = Regressor(3, 8, 4, build_head("nca_i", 4))
    training.fit(model, TensorInputs(x), y, np.arange(40), [], [], s, seed=0, checkpoint=ck)
    assert "head.softstep.params.linear.weight" in ck.state["model"] and ck.state["epoch"] == 2
    again = Regressor(3, 8, 4, build_head("nca_i", 4))
    res = training.fit(again, TensorInputs(x), y, np.arange(40), [], [], s, seed=0, checkpoint=ck)
    assert res.epochs_run == 2  # resumed after its last epoch: nothing left to train
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
