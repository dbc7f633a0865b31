"""Every bad config, in one table: the override(s) on the tiny run, the error it must raise, and what the message
must say (regular expressions, each searched for). Each fails before any work: no extractor is built, no input
is prepared, nothing is written under the test's folder (results, cache or anything else)."""

from __future__ import annotations

import re

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from data.base import DataError
from experiments.protocol import pipeline, setup
from experiments.protocol.settings import ConfigError

UNKNOWN_OPTION = (MissingConfigException, ConfigCompositionException)

#: (overrides, error type(s), patterns the message must contain)
CASES = [
    # a config group option that does not exist: Hydra's error names the group and lists the choices
    (["head=nope"], UNKNOWN_OPTION, ["head", "nca_i"]),
    # values the pipeline checks at the door (experiments.protocol.settings.check_config), each named in the message
    (["splits=[0,0]"], ConfigError, [r"splits"]),
    (["splits=[-1]"], ConfigError, [r"splits"]),
    (["splits=[]"], ConfigError, [r"splits"]),
    (["model.embed_dim=0"], ConfigError, [r"model\.embed_dim"]),
    (["trainer.patience=0"], ConfigError, [r"trainer\.patience"]),
    (["trainer.lr=-1"], ConfigError, [r"trainer\.lr"]),
    (["trainer.head_lr=0"], ConfigError, [r"trainer\.head_lr", "null"]),
    (["head.similarity=manhattan"], ConfigError, [r"head\.similarity"]),
    (["head=nca", "head.similarity=manhattan"], ConfigError, [r"head\.similarity"]),
    (["trainer.reference=sample", "trainer.reference_fraction=0"], ConfigError, [r"trainer\.reference_fraction"]),
    (["save_model=sometimes"], ConfigError, [r"save_model"]),
    # the device knobs (experiments.protocol.device.check)
    (["trainer.precision=fp16"], ConfigError, [r"trainer\.precision"]),
    (["trainer.compile=maybe"], ConfigError, [r"trainer\.compile"]),
    (["trainer.max_elements=0"], ConfigError, [r"trainer\.max_elements"]),
    (["trainer.num_workers=-2"], ConfigError, [r"trainer\.num_workers"]),
    (["trainer.decoded_cache=sometimes"], ConfigError, [r"trainer\.decoded_cache"]),
    # a key no code reads is a typo, not a setting
    (["+trainer.bogus=1"], ConfigError, [r"trainer\.bogus", "not a trainer setting"]),
    (["+model.widht=3"], ConfigError, [r"model\.widht", "not a model setting"]),
    # the synthetic data's own values (its loader checks them before anything is built)
    (["dataset.loader.noise=-1"], DataError, [r"dataset\.loader\.noise"]),
    # where results and caches go: an empty value (SOFTSTEP_RESULTS=) would put the cache at /cache
    (["paths.results_root="], ConfigError, [r"paths\.results_root", "SOFTSTEP_RESULTS"]),
    (["paths.results_root=/"], ConfigError, [r"paths\.results_root", "root"]),
    (["paths.cache_dir="], ConfigError, [r"paths\.cache_dir", "SOFTSTEP_CACHE"]),
    # the head's own constructor refuses an argument it does not take
    (["head=nca", "+head.module.bogus=1"], ConfigError, [r"head\.module"]),
    # an extractor for another modality than the data's (text vs the synthetic table)
    (["extractor=minilm"], ConfigError, [r"minilm.*text.*table"]),
    # a mandatory value (???) left unset: named, with what to set, not OmegaConf's MissingMandatoryValue
    (["dataset=table"], ConfigError, [r"missing config value dataset\.loader\.path", r"dataset\.loader\.path=\.\.\."]),
    (["dataset=table", "dataset.loader.path=x.csv"], ConfigError, [r"dataset\.loader\.target"]),
    (["dataset=image_folder"], ConfigError, [r"dataset\.loader\.root"]),
    (["final=maybe"], ConfigError, [r"final"]),
]


@pytest.mark.parametrize("overrides,error,patterns", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_config_fails_before_any_work(tmp_path, tiny, monkeypatch, overrides, error, patterns):
    import extractors.text as T

    monkeypatch.setattr(T, "minilm", lambda **_: pytest.fail("no extractor may be built"))
    monkeypatch.setattr(setup, "prepare_inputs", lambda *a, **k: pytest.fail("no input may be prepared"))
    with pytest.raises(error) as e:
        pipeline.run(tiny(*overrides))
    for pattern in patterns:
        assert re.search(pattern, str(e.value)), (pattern, str(e.value))
    assert not list(tmp_path.iterdir())


def test_run_py_says_a_missing_value_in_one_line_with_exit_2(tiny, capsys):
    import run as RUN

    with pytest.raises(SystemExit) as e:
        RUN.execute(tiny("dataset=table"), signals=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: missing config value dataset.loader.path")
