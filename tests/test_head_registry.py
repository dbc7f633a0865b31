"""One head registry (``softstep.heads.HEAD_SPECS``): the head configs, the saved-model class table, the report's
names and labels, the benchmarks and ``softstep.HEADS``/``softstep.TUNED`` all agree with it, so a new head is its
class, its YAML and one registry entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import softstep
from softstep.heads import HEAD_SPECS, build_head, head_classes, head_module
from softstep.saved_format import head_from_saved

ROOT = Path(__file__).resolve().parents[1]
#: head arguments whose config key has another name (none: the configs name every keyword as the registry does;
#: run ids hash ``step`` under its first name, experiments.store.identity.FIRST_NAMES)
CONFIG_NAMES: dict[str, str] = {}
CONFIGS = {p.stem: OmegaConf.load(p) for p in sorted((ROOT / "configs" / "head").glob("*.yaml"))}


def test_every_head_config_is_a_registry_entry_and_back():
    assert set(CONFIGS) == set(HEAD_SPECS)
    assert list(softstep.HEADS) == list(softstep.TUNED) == list(HEAD_SPECS)


@pytest.mark.parametrize("name", list(HEAD_SPECS))
def test_a_head_config_builds_the_registry_class_with_its_fixed_arguments_and_tuned_values(name):
    spec, cfg = HEAD_SPECS[name], CONFIGS[name]
    module = OmegaConf.to_container(cfg.head.module, resolve=False)
    assert cfg.head.name == name
    assert head_classes()[module["_target_"]] is spec.cls
    assert {k: module.get(CONFIG_NAMES.get(k, k)) for k in spec.keywords} == spec.keywords
    for key, group in (("similarity", "head"), ("embed_dim", "model"), ("batch_size", "trainer")):
        assert OmegaConf.to_container(cfg, resolve=False)[group][key] == f"${{paper_tuned:{name},{key}}}"
    assert softstep.TUNED[name] == spec.tuned


@pytest.mark.parametrize("name", list(HEAD_SPECS))
def test_the_saved_model_table_builds_what_the_registry_builds(name):
    spec = HEAD_SPECS[name]
    similarity = spec.tuned["similarity"]
    saved = head_from_saved(head_module(name, 8, similarity), "m.json")
    built = build_head(name, 8, **({"similarity": similarity} if similarity else {}))
    assert type(saved) is type(built) is spec.cls
    assert {k: v.shape for k, v in saved.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}
    assert spec.needs_reference == built.needs_reference


def test_the_report_and_the_benchmarks_name_the_registry_heads():
    from benchmarks import ops
    from experiments.report import names

    assert names.HEADS == tuple(HEAD_SPECS) == ops.heads()
    assert names.NEIGHBOUR_HEADS == tuple(h for h, s in HEAD_SPECS.items() if s.needs_reference)
    assert all(names.head_label(h) == s.label for h, s in HEAD_SPECS.items())
