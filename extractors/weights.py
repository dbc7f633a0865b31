"""Where pretrained weights come from, and what to do on a machine without internet.

Every extractor takes a ``source``:

- a hub name (the default): a Hugging Face model id (``distilbert-base-uncased``) or a
  torchvision weights name (``IMAGENET1K_V1``). Looked up first in the weights cache named by
  ``$SOFTSTEP_WEIGHTS`` (``<cache>/hf/<model id>``, ``<cache>/torchvision/<arch>.pth``, as written
  by ``scripts/fetch_weights.py``), then in the Hugging Face cache / ``$TORCH_HOME``, then
  downloaded, unless ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE`` or ``SOFTSTEP_OFFLINE`` is set;
- a local folder (``save_pretrained`` output) or file (a torchvision state dict ``.pth`` /
  ``.safetensors``);
- ``random``: the same architecture, randomly initialised (seeded), for tests and benchmarks.

Files are read with ``torch.load(weights_only=True)`` or safetensors only; transformers'
``from_pretrained`` does the same. A weight that is neither cached nor downloadable raises
:class:`WeightsNotFound`, naming what is missing and the command that fetches it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ENV_CACHE = "SOFTSTEP_WEIGHTS"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SOFTSTEP_OFFLINE")
FETCH = "python scripts/fetch_weights.py --cache-dir DIR"


class WeightsNotFound(FileNotFoundError):
    """A pretrained weight is neither on this machine nor downloadable; the message says how to fetch it."""


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARS)


def weights_cache() -> Path | None:
    v = os.environ.get(ENV_CACHE, "").strip()
    return Path(v).expanduser() if v else None


def hf_target(cache: Path, model_id: str) -> Path:
    return Path(cache) / "hf" / model_id


def torchvision_target(cache: Path, arch: str) -> Path:
    return Path(cache) / "torchvision" / f"{arch}.pth"


def is_local(source: str) -> bool:
    """A path (existing, or written as a path) rather than a hub name."""
    s = str(source)
    return (
        Path(s).expanduser().exists()
        or s.startswith(("/", "./", "../", "~", ".\\"))
        or s.endswith((".pth", ".pt", ".safetensors"))
    )


def not_found(extractor: str, what: str, looked: list, reason: str, rel: str = "") -> WeightsNotFound:
    where = "\n".join(f"    {p}" for p in looked) or "    (nowhere)"
    target = f"DIR/{rel}" if rel else "<the folder or .pth file for this model under DIR>"
    return WeightsNotFound(
        f"extractor {extractor!r}: {what} not found.\n  looked in:\n{where}\n  {reason}\n"
        f"  fix: on a machine with internet run `{FETCH}`, copy DIR to this machine, then either\n"
        f"    export {ENV_CACHE}=DIR (every extractor looks there first), or\n"
        f"    set extractor.builder.source={target};\n"
        f"  or, to run without pretrained weights (a randomly initialised {extractor}), extractor.builder.source=random.\n"
        f"  (offline flags seen: {', '.join(f'{v}={os.environ[v]}' for v in OFFLINE_VARS if v in os.environ) or 'none'})"
    )


def hf_load(load: Callable[..., object], source: str, *, extractor: str, what: str = "model"):
    """Run ``load(name_or_path, local_files_only=...)`` (a ``from_pretrained``) on ``source`` with the rules above."""
    if is_local(source):
        path = Path(source).expanduser()
        if not (path / "config.json").is_file() and what == "model":
            raise not_found(
                extractor,
                f"a saved model folder at {path} (config.json and model.safetensors)",
                [path],
                "the folder does not exist or has no config.json (save it with save_pretrained)",
            )
        try:
            return load(str(path), local_files_only=True)
        except (OSError, ValueError) as e:
            raise not_found(extractor, f"{what} files in {path}", [path], f"loading failed: {e}") from e
    looked = []
    cache = weights_cache()
    if cache is not None:
        local = hf_target(cache, source)
        looked.append(local)
        if local.is_dir():
            return load(str(local), local_files_only=True)
    looked.append(f"the Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}) for {source!r}")
    if offline():
        try:
            return load(source, local_files_only=True)
        except Exception as e:
            raise not_found(
                extractor,
                f"the {what} of {source!r}",
                looked,
                "the hub is off (offline mode) and no local copy exists",
                rel=f"hf/{source}",
            ) from e
    try:
        return load(source)
    except Exception as e:
        raise not_found(
            extractor,
            f"the {what} of {source!r}",
            looked + [f"https://huggingface.co/{source}"],
            f"download failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
            rel=f"hf/{source}",
        ) from e


def load_state_dict_file(path: Path, *, extractor: str) -> dict:
    """A state dict from ``.safetensors`` or a ``torch.save`` file (weights_only: no arbitrary pickle)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"extractor {extractor!r}: cannot read weights {path} ({type(e).__name__}: {e}); "
            "expected a state dict saved with torch.save(model.state_dict()) or safetensors"
        ) from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"extractor {extractor!r}: {path} holds a {type(sd).__name__}, not a state dict")
    return sd


def torchvision_state_dict(arch: str, weights, source: str, *, extractor: str) -> dict | None:
    """State dict for a torchvision model: ``random`` → None; file; folder; or a weights enum name."""
    if source == "random":
        return None
    if is_local(source):
        path = Path(source).expanduser()
        if path.is_file():
            return load_state_dict_file(path, extractor=extractor)
        cands = [path / f"{arch}.pth", path / f"{arch}.safetensors", torchvision_target(path, arch)]
        for c in cands:
            if c.is_file():
                return load_state_dict_file(c, extractor=extractor)
        raise not_found(extractor, f"{arch} weights", [path, *cands], "no such file or folder")
    try:
        w = weights[source]
    except KeyError:
        raise ValueError(
            f"extractor {extractor!r}: unknown source {source!r}; use one of "
            f"{', '.join(m.name for m in weights)}, 'random', a .pth/.safetensors file or a folder"
        ) from None
    url_file = Path(w.url).name
    looked = []
    cache = weights_cache()
    if cache is not None:
        looked.append(torchvision_target(cache, arch))
    looked.append(Path(torch.hub.get_dir()) / "checkpoints" / url_file)
    for c in looked:
        if c.is_file():
            return load_state_dict_file(c, extractor=extractor)
    if offline():
        raise not_found(
            extractor,
            f"torchvision {arch} {source} weights ({url_file})",
            looked,
            "offline mode is on, so nothing is downloaded",
            rel=f"torchvision/{arch}.pth",
        )
    try:
        return torch.hub.load_state_dict_from_url(
            w.url, progress=False, check_hash=True, map_location="cpu", weights_only=True
        )
    except Exception as e:
        raise not_found(
            extractor,
            f"torchvision {arch} {source} weights ({url_file})",
            looked + [w.url],
            f"download failed ({type(e).__name__}: {e})",
            rel=f"torchvision/{arch}.pth",
        ) from e


# ---------------------------------------------------------------------------------------------
# Fetching hub weights ahead of time (scripts/fetch_weights.py lists them from the extractor configs)


@dataclass(frozen=True)
class Weight:
    extractor: str  # the extractor config that uses it
    kind: str  # "hf" or "torchvision"
    name: str  # HF model id, or torchvision weights name
    model: str = ""  # transformers class for hf / torchvision builder for torchvision
    processor: str = ""  # transformers tokenizer / feature-extractor class (hf)

    def target(self, cache: Path) -> Path:
        return hf_target(cache, self.name) if self.kind == "hf" else torchvision_target(cache, self.model)


#: builders (an extractor config's ``builder._target_``) that load a Hugging Face model → the transformers
#: classes fetched for it: the model, and its tokenizer or feature extractor
HF_BUILDERS = {
    "extractors.text.distilbert": ("DistilBertModel", "DistilBertTokenizer"),
    "extractors.text.bert_base": ("BertModel", "BertTokenizer"),
    "extractors.audio.hubert_base": ("HubertModel", "Wav2Vec2FeatureExtractor"),
    "extractors.audio.whisper_tiny": ("WhisperModel", "WhisperFeatureExtractor"),
}
#: builders that load torchvision weights are named after the architecture: ``extractors.vision.<arch>``
TORCHVISION_BUILDERS = "extractors.vision."


def hub_weight(extractor: str, builder: str, source) -> Weight | None:
    """The hub weight that extractor ``extractor`` loads from ``source`` with ``builder`` (a config's
    ``builder.source`` and ``builder._target_``); None where it needs none: no source, ``random``,
    ``package`` (weights that ship in a pip package) or a local folder or file."""
    if source is None or str(source) in ("random", "package") or is_local(str(source)):
        return None
    if builder in HF_BUILDERS:
        return Weight(extractor, "hf", str(source), *HF_BUILDERS[builder])
    if builder.startswith(TORCHVISION_BUILDERS):
        return Weight(extractor, "torchvision", str(source), builder.removeprefix(TORCHVISION_BUILDERS))
    raise ValueError(
        f"extractor {extractor!r}: no way to fetch hub weights {source!r} for builder {builder!r}; "
        f"known: {', '.join(HF_BUILDERS)}, {TORCHVISION_BUILDERS}<arch>"
    )


def present(w: Weight) -> bool:
    """Whether ``w`` is on this machine where its extractor looks first: the ``$SOFTSTEP_WEIGHTS`` cache, else the
    Hugging Face cache (its ``config.json``) or ``$TORCH_HOME``'s checkpoints; nothing is downloaded."""
    cache = weights_cache()
    if cache is not None and (
        (w.target(cache) / "config.json").is_file() if w.kind == "hf" else w.target(cache).is_file()
    ):
        return True
    if w.kind == "hf":
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(w.name, "config.json"), str)
    import torchvision

    url = torchvision.models.get_model_weights(w.model)[w.name].url
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file()


def fetch(
    cache: Path, weights, *, dry_run: bool = False, only=None, force: bool = False, log=print
) -> list[tuple[Weight, Path]]:
    """Download every :class:`Weight` in ``weights`` (or those whose extractor is in ``only``) into ``cache``.

    HF models and their tokenizer / feature extractor go to ``<cache>/hf/<model id>``
    (``save_pretrained``, safetensors); torchvision state dicts to ``<cache>/torchvision/<arch>.pth``.
    Returns the (weight, target) pairs; with ``dry_run`` nothing is downloaded or written.
    """
    cache = Path(cache).expanduser()
    weights = list(weights)
    chosen = [w for w in weights if not only or w.extractor in only]
    unknown = set(only or ()) - {w.extractor for w in weights}
    if unknown:
        raise ValueError(f"unknown extractor(s) {sorted(unknown)}; known: {', '.join(w.extractor for w in weights)}")
    out = []
    for w in chosen:
        target = w.target(cache)
        out.append((w, target))
        done = (target / "config.json").is_file() if w.kind == "hf" else target.is_file()
        status = "present" if done and not force else ("would fetch" if dry_run else "fetching")
        log(f"{w.extractor:16s} {w.kind:11s} {w.name:28s} -> {target}  [{status}]")
        if dry_run or (done and not force):
            continue
        if w.kind == "hf":
            import transformers

            model = getattr(transformers, w.model).from_pretrained(w.name)
            proc = getattr(transformers, w.processor).from_pretrained(w.name)
            target.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(target, safe_serialization=True)
            proc.save_pretrained(target)
        else:
            import torchvision

            enum = torchvision.models.get_model_weights(w.model)[w.name]
            sd = enum.get_state_dict(progress=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            torch.save(sd, tmp)
            os.replace(tmp, target)
    return out
