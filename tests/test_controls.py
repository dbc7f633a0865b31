"""The offline study's controls and nona_anon's options through the pipeline: ``head.control`` (the step frozen at its
draw, the same head without it), ``trainer.embed_passes=2`` and the step's start recorded beside its end."""

from __future__ import annotations

import pytest
import torch

from experiments.models import saved
from experiments.protocol import pipeline
from experiments.protocol.compose import compose
from experiments.protocol.settings import ConfigError, check_config, head_from_config
from experiments.store import identity
from experiments.store.results import read_results
from softstep import NCAHead, build_head
from softstep.model import Regressor
from softstep.training import _training_step


def test_frozen_step_keeps_the_draw_through_the_pipeline(tiny):
    """nca_g with ``head.control=frozen_step`` at a rate where the step moves: its l, u, t at the end (and after each
    epoch) are the untrained model's (``step_start``), while the plain head's moved away from theirs."""
    common = ["head=nca_g", "trainer.lr=3e-2", "trainer.max_epochs=3", "trainer.eval_from_epoch=0"]
    pipeline.run(tiny(*common, "head.control=frozen_step"))
    pipeline.run(tiny(*common))
    by_control = {r["config"]["head"]["control"]: r for r in read_results(tiny.results) if r["split"] == 0}
    assert by_control.keys() == {"frozen_step", "none"}
    for control, r in by_control.items():
        assert set(r["step_start"]) == {"l", "u", "t"}
        moved = max(abs(r["sparsity"][p]["median"] - r["step_start"][p]["median"]) for p in "lut")
        per_epoch = [h["sparsity/t_median"] for h in r["history"]]
        if control == "frozen_step":
            assert moved < 1e-12 and max(per_epoch) - min(per_epoch) < 1e-12
        else:
            assert moved > 1e-3 and max(per_epoch) - min(per_epoch) > 1e-4, moved
    assert by_control["frozen_step"]["_path"] != by_control["none"]["_path"]  # a run id of its own


def test_frozen_step_parameters_do_not_move_in_training():
    cfg = compose(["dataset=synthetic", "head=diffknn_i", "head.control=frozen_step", "protocol=tuned"])
    head = head_from_config(cfg)
    assert not any(p.requires_grad for p in head.kstep.parameters())
    model = Regressor(4, 16, cfg.model.embed_dim, head)
    before = [p.detach().clone() for p in head.kstep.parameters()]
    mlp_before = [p.detach().clone() for p in model.mlp.parameters()]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    step = _training_step(model, compile=False)
    for _ in range(3):
        opt.zero_grad()
        step(torch.randn(32, 4), torch.rand(32), torch.rand(32)).backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, head.kstep.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(mlp_before, model.mlp.parameters()))


@pytest.mark.parametrize("name", ["nca_g", "diffknn_i"])
def test_no_step_is_the_same_head_without_its_step(name):
    """``head.control=no_step``: an NCA head with the head's similarity, embedding and β and no step; a DiffKNN head
    without SoftKStep weighs every reference by softmax(β·Sim), which an NCA head without a step computes."""
    cfg = compose(["dataset=synthetic", f"head={name}", "head.control=no_step"])
    head = head_from_config(cfg)
    assert type(head) is NCAHead and head.step is None
    assert head.similarity == cfg.head.similarity and head.embed_dim == cfg.model.embed_dim
    plain = build_head("nca", cfg.model.embed_dim, similarity=cfg.head.similarity)
    z, y = torch.randn(10, cfg.model.embed_dim), torch.rand(10)
    torch.testing.assert_close(head.eval().predict(z[:3], z, y), plain.eval().predict(z[:3], z, y))
    module = saved.head_module(cfg)
    assert module._target_ == "softstep.NCAHead" and module.step is None  # what a saved model rebuilds


@pytest.mark.parametrize("head", ["linear", "nca"])
def test_a_control_of_a_head_without_a_step_is_refused(head):
    with pytest.raises(ConfigError, match=r"head.control='no_step'.*no step"):
        check_config(compose(["dataset=synthetic", f"head={head}", "head.control=no_step"]))
    with pytest.raises(ConfigError, match=r"head.control='frozen'.*one of none, frozen_step, no_step"):
        check_config(compose(["dataset=synthetic", "head=nca_i", "head.control=frozen"]))


def test_defaults_added_later_leave_run_ids_where_they_were():
    """``head.control=none``, ``trainer.embed_passes=1`` and ``head.module.power_floor=null`` are the behaviour of
    before they existed: they do not enter the run id; any other value does."""
    base = compose(["dataset=synthetic", "head=nca_i"])
    ids = {identity.run_id(base)}
    for override in ("head.control=frozen_step", "trainer.embed_passes=2", "head.module.power_floor=1e-12"):
        ids.add(identity.run_id(compose(["dataset=synthetic", "head=nca_i", override])))
    assert len(ids) == 4


def test_embed_passes_two_embeds_twice_and_masks_only_equal_passes():
    """nona_anon's training: the queries in a pass of their own. Without dropout the passes agree and the self-mask
    applies (the loss equals one pass's); with dropout they differ, so each query meets its own noisy copy."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.rand(16)
    calls = []
    for dropout in (0.0, 0.5):
        model = Regressor(4, 16, 8, build_head("nca", 8), dropout=dropout).train()
        real = model.embed
        model.embed = lambda v, real=real: calls.append(len(v)) or real(v)
        torch.manual_seed(1)
        one = _training_step(model, False)(x, y, y)
        torch.manual_seed(1)
        two = _training_step(model, False, embed_passes=2)(x, y, y)
        if dropout == 0:
            torch.testing.assert_close(one, two)
        else:
            z = real(x)
            loss = ((model.head(z, z, y, exclude_self=False) - y) ** 2).mean()
            assert not torch.isclose(two, one) and torch.isfinite(loss)
    assert calls == [16, 16, 16] * 2
    with pytest.raises(ConfigError, match="trainer.embed_passes"):
        check_config(compose(["dataset=synthetic", "head=nca", "trainer.embed_passes=2", "trainer.reference=sample"]))
