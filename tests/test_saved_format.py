"""The saved-model format's own rules, without training a model: the JSON's checks and the atomic write that every
saved model, result file and cache goes through."""

from __future__ import annotations

import os

import pytest

from softstep.heads import head_module
from softstep.safe_io import atomic_write_bytes
from softstep.saved_schema import MODEL_FORMAT, SavedModelError, validate_meta


def nca_meta(**label) -> dict:
    """A valid saved model's JSON (an untrained plain-NCA model of 3 inputs), its label range replaced by ``label``."""
    return {
        "format_version": MODEL_FORMAT,
        "head": "nca",
        "in_dim": 3,
        "label": {"lo": 0.0, "hi": 10.0, "log_target": False, **label},
        "features": None,
        "reference_items": [7, 9],
        "config": {
            "head": {"name": "nca", "module": head_module("nca", 4, "l2")},
            "model": {"arch": "mlp", "hidden": 8, "embed_dim": 4, "dropout": 0.0},
        },
    }


def test_a_valid_meta_passes_and_a_flat_label_range_is_allowed():
    assert validate_meta(nca_meta(), "m.json")["head"] == "nca"
    validate_meta(nca_meta(lo=2.0, hi=2.0), "m.json")  # one distinct label: a span of 0


def test_a_label_range_whose_max_is_below_its_min_is_refused():
    with pytest.raises(SavedModelError, match=r"m\.json: field label\.hi: 1\.0 is below label\.lo 5\.0"):
        validate_meta(nca_meta(lo=5.0, hi=1.0), "m.json")


@pytest.mark.parametrize("fails", ["write", "fsync", "rename"])
def test_an_interrupted_atomic_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch, fails):
    """The write, the flush to disk or the rename fails midway (a full disk, a killed process): the file still holds
    its old bytes, whole, and no temporary file is left beside it."""
    path = tmp_path / "result.json"
    path.write_bytes(b"old and whole")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if fails == "write":
        real_fdopen = os.fdopen

        class HalfWritten:
            def __init__(self, fd, mode):
                self.f = real_fdopen(fd, mode)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, payload):
                self.f.write(payload[:3])
                boom()

        monkeypatch.setattr(os, "fdopen", HalfWritten)
    else:
        monkeypatch.setattr(os, {"fsync": "fsync", "rename": "replace"}[fails], boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(path, b"new bytes that never land")
    monkeypatch.undo()
    assert path.read_bytes() == b"old and whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
