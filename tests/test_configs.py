"""Config smoke tests: every experiment composes, every Table 1 job builds its head, every head YAML
builds the class it names with the paper's tuned values, each owned by one file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import softstep
from experiments import sweep
from experiments.protocol import settings
from experiments.protocol.compose import compose, hydra_context
from experiments.report.names import HEADS, NEIGHBOUR_HEADS
from experiments.store import identity

REPO = Path(__file__).resolve().parents[1]
HEAD_FILES = sorted(p.stem for p in (REPO / "configs/head").glob("*.yaml"))


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (REPO / "configs/experiment").glob("*.yaml")))
def test_every_experiment_composes_and_builds_its_head(experiment):
    cfg = compose([f"experiment={experiment}"])
    assert settings.check_config(cfg)  # builds the head from head.module, checks every value the pipeline reads
    assert isinstance(settings.head_from_config(cfg), torch.nn.Module)


@pytest.mark.slow
def test_every_table1_job_composes_and_instantiates_without_data():
    """Each (dataset, extractor, head) that experiment=table1 expands to: the head builds with its embedding
    width, and each distinct extractor builds (random weights: no download) for the dataset's modality."""
    jobs = sweep.expand("table1", [])
    combos = sorted({(j.dataset, j.extractor, j.head) for j in jobs})
    assert len(combos) == 60 and {h for _, _, h in combos} == set(HEADS)
    extractors = {}
    with hydra_context():
        for dataset, extractor, head in combos:
            cfg = compose([f"dataset={dataset}", f"head={head}", "extractor.builder.source=random"])
            assert (cfg.dataset.name, cfg.extractor.name, cfg.head.name) == (dataset, extractor, head)
            built = settings.head_from_config(cfg)
            z = torch.randn(4, cfg.model.embed_dim)
            assert built(z, z, torch.rand(4), exclude_self=True).shape == (4,)
            if extractor not in extractors:
                extractors[extractor] = instantiate(cfg.extractor.builder, finetune=cfg.extractor.finetune, in_dim=3)
                assert extractors[extractor].modality == cfg.extractor.modality
    assert len(extractors) >= 5


@pytest.mark.parametrize("name", HEADS)
def test_head_yaml_builds_the_library_head_with_its_tuned_values(name):
    cfg = compose([f"head={name}"])
    built = settings.head_from_config(cfg)
    assert type(built) is type(softstep.build_head(name, cfg.model.embed_dim, similarity="l2"))
    assert built.needs_reference == (name in NEIGHBOUR_HEADS)
    sim, embed, batch = (softstep.TUNED[name][k] for k in ("similarity", "embed_dim", "batch_size"))
    assert (cfg.model.embed_dim, cfg.trainer.batch_size) == (embed, batch)
    assert identity.head_similarity(cfg) == (sim or None)
    if sim:
        assert built.similarity == sim
    # model and trainer read nothing back from the head: their values are owned by the head file
    assert "embed_dim" not in cfg.head and "batch_size" not in cfg.head


def test_every_head_file_builds_a_head_named_like_its_file():
    """The library's six heads each have a file; any other file (a head of your own) builds too."""
    assert set(softstep.HEADS) <= set(HEAD_FILES)
    with hydra_context():
        for name in HEAD_FILES:
            cfg = compose([f"head={name}"])
            assert cfg.head.name == name and isinstance(settings.head_from_config(cfg).needs_reference, bool)


def test_tuned_values_override_from_the_command_line_and_experiments():
    cfg = compose(["head=nca_i", "model.embed_dim=7", "trainer.batch_size=5", "head.similarity=cos"])
    built = settings.head_from_config(cfg)
    assert (built.embed_dim, built.similarity, cfg.trainer.batch_size) == (7, "cos", 5)
    tune = compose(["experiment=tune_rsna", "model.embed_dim=25"])
    assert tune.model.embed_dim == 25


def test_linear_similarity_is_not_part_of_its_run_id():
    a = compose(["dataset=synthetic", "head=linear", "head.similarity=l2"])
    b = compose(["dataset=synthetic", "head=linear", "head.similarity=cos"])
    c = compose(["dataset=synthetic", "head=nca", "head.similarity=l2"])
    d = compose(["dataset=synthetic", "head=nca", "head.similarity=cos"])
    assert identity.run_id(a) == identity.run_id(b) and identity.run_id(c) != identity.run_id(d)
    assert identity.run_id(a).startswith("linear-e25-b32-") and identity.run_id(c).startswith("l2-e100-b32-")


def _leaves(node, prefix=""):
    """(dotted key, value) of every leaf of a plain YAML mapping."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "params":  # sweeper params: keys with dots, one leaf
            yield from _leaves(value, path + ".")
        else:
            yield path, value


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (REPO / "configs/experiment").glob("*.yaml")))
def test_every_value_an_experiment_sets_is_the_value_used(experiment):
    """The root config's own values come first in its defaults list, so an experiment file (and the
    command line) override them: e.g. demo's progress=false and tune_rsna's three splits."""
    import yaml

    raw = yaml.safe_load((REPO / "configs/experiment" / f"{experiment}.yaml").read_text())
    cfg = compose([f"experiment={experiment}"], hydra=True)
    leaves = [(k, v) for k, v in _leaves({k: v for k, v in raw.items() if k != "defaults"})]
    assert leaves
    for key, value in leaves:
        used = OmegaConf.select(cfg, key)
        used = OmegaConf.to_container(used) if OmegaConf.is_config(used) else used
        assert used == value, f"{experiment}.yaml sets {key}={value!r}, the run uses {used!r}"
    assert compose([f"experiment={experiment}", "progress=true"]).progress is True  # the command line wins


def test_protocols_set_their_settings_and_paper_experiments_use_the_authors():
    tuned, authors = compose(["protocol=tuned", "dataset=adresso"]), compose(["protocol=authors", "dataset=adresso"])
    assert (tuned.protocol.name, authors.protocol.name) == ("tuned", "authors")
    assert (tuned.trainer.lr, tuned.model.arch, tuned.trainer.eval_from_epoch) == (1e-3, "mlp", 0)
    assert (authors.trainer.lr, authors.trainer.extractor_lr, authors.model.arch, authors.trainer.eval_from_epoch) == (
        1e-5,
        1e-5,
        "mlp_bn_tanh",
        5,
    )
    assert (tuned.extractor.builder.pooling, authors.extractor.builder.pooling) == ("mean", "cls")
    assert (
        compose(["protocol=authors"]).extractor.builder.pooling == "mean"
    )  # MiniLM keeps the pooling it was trained with
    for experiment in ("table1", "tune_rsna"):
        assert compose([f"experiment={experiment}"]).protocol.name == "authors"
    assert compose([]).protocol.name == compose(["experiment=demo"]).protocol.name


def test_the_paper_count_is_not_part_of_the_run_id():
    a = compose(["dataset=houses", "head=nca"])
    b = compose(["dataset=houses", "head=nca", "dataset.expected_n=7", "dataset.expected_n_note=changed"])
    assert identity.run_id(a) == identity.run_id(b)


@pytest.mark.parametrize("experiment", ["table1", "tune_rsna"])
@pytest.mark.parametrize("head", NEIGHBOUR_HEADS)
def test_paper_experiments_compose_the_method_as_printed(experiment, head):
    """experiment=table1 and tune_rsna: β = 1 (no learned temperature: Algorithms 1-2), the SoftStep/k parameters
    drawn as nona_anon's similarity.py draws them (torch's RNG as the pipeline seeds it), and an epoch cap far above
    where the authors' patience stops a split."""
    cfg = compose([f"experiment={experiment}", f"head={head}"])
    assert cfg.head.module.learn_scale is False and cfg.head.module.param_init == "authors"
    assert cfg.trainer.max_epochs >= 1000 and cfg.trainer.head_lr is None
    torch.manual_seed(7)
    built = settings.head_from_config(cfg)
    assert built.log_scale is None
    step = getattr(built, "step", None) or getattr(built, "kstep", None)
    if step is None:  # plain NCA: nothing to initialise
        return
    n = 3 if hasattr(built, "step") and built.step is not None else 1
    torch.manual_seed(7)
    if step.params.param_mode == "global":
        torch.testing.assert_close(step.params.theta.detach(), torch.randn(n))
    else:
        ref = torch.nn.Linear(cfg.model.embed_dim, n)  # the authors' nn.Linear(dims, 3), default initialisation
        torch.testing.assert_close(step.params.linear.weight.detach(), ref.weight.detach())
        torch.testing.assert_close(step.params.linear.bias.detach(), ref.bias.detach())


def test_tuned_protocol_keeps_our_temperature_and_start():
    cfg = compose(["protocol=tuned", "head=nca_i"])
    assert cfg.head.module.learn_scale is True and cfg.head.module.param_init == "zero"
    step = settings.head_from_config(cfg).step.params
    assert torch.equal(step.linear.weight.detach(), torch.zeros_like(step.linear.weight))
