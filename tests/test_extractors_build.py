"""Extractors: architecture, output width, pooling, finetune; weights from a local folder / file / cache
with networking off; the error when a weight is missing; fetch_weights' plan, derived from the configs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from extractors import weights as W
from extractors.base import Extractor

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "extractor"


def _script(name):
    return importlib.import_module(f"scripts.{name}")


fetch_weights = _script("fetch_weights")
PAPER_WEIGHTS = fetch_weights.paper_weights()  # what scripts/fetch_weights.py fetches, from configs/extractor/
# name → (modality, sample input maker, out_dim of the tiny/random model, pooling)
SPECS = {
    "resnet18": ("image", lambda: torch.randn(2, 3, 40, 40), 512, "avgpool"),
    "resnet34": ("image", lambda: torch.randn(2, 3, 40, 40), 512, "avgpool"),
    "efficientnet_b0": ("image", lambda: torch.randn(2, 3, 40, 40), 1280, "avgpool"),
    "distilbert": ("text", lambda: ["a short text", "another, longer piece of text!"], 32, "mean"),
    "bert_base": ("text", lambda: ["a short text", "another, longer piece of text!"], 32, "mean"),
    "hubert_base": ("audio", lambda: 0.1 * torch.randn(2, 16000), 32, "mean"),
    "whisper_tiny": ("audio", lambda: 0.1 * torch.randn(2, 16000), 32, "mean"),
}


def call(builder, **kw):
    """hydra's instantiate, as the pipeline calls it, with the builder's own exception unwrapped."""
    try:
        return instantiate(builder, **kw)
    except InstantiationException as e:
        raise e.__cause__ from None


def build(name, **kw):
    """A frozen extractor (``finetune=False``) unless ``kw`` says otherwise, with random weights."""
    cfg = OmegaConf.load(REPO / "configs" / "extractor" / f"{name}.yaml")
    return call(cfg.builder, **{"finetune": False, "in_dim": None, "source": "random", **kw})


@pytest.fixture
def offline(offline, tmp_path):
    """Networking off as on a compute node: the shared fixture's offline flags (tests/conftest.py), plus an empty
    torch hub dir and no weights cache."""
    offline.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    offline.delenv(W.ENV_CACHE, raising=False)
    return offline


@pytest.mark.parametrize("name", list(SPECS))
def test_random_extractor_shapes(name):
    modality, make, out_dim, pooling = SPECS[name]
    ext = build(name, unknown_kwarg="ignored")
    cfg = OmegaConf.load(REPO / "configs" / "extractor" / f"{name}.yaml")
    assert isinstance(ext, Extractor) and ext.modality == modality == cfg.modality
    assert ext.out_dim == out_dim and ext.pooling == pooling and ext.cache_key
    assert not any(p.requires_grad for p in ext.parameters())
    with torch.no_grad():
        a, b = ext.eval()(make()), build(name).eval()(make() if modality == "text" else make())
    assert a.shape == (2, out_dim) and torch.isfinite(a).all()
    if modality == "text":
        torch.testing.assert_close(a, b)  # seeded random init: the same model every time


@pytest.mark.parametrize("name", ["resnet18", "distilbert", "hubert_base", "whisper_tiny"])
def test_finetune_makes_parameters_trainable(name):
    ext = build(name, finetune=True)
    assert ext.finetune and all(p.requires_grad for p in ext.parameters())
    ext.train()
    assert ext.training


def test_frozen_cnn_stays_in_eval_mode_and_accepts_grey():
    ext = build("resnet18")
    ext.train()
    assert not ext.net.training  # BatchNorm statistics of a frozen extractor never move
    grey = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ext(grey), ext(grey.expand(-1, 3, -1, -1)))
        assert ext(grey[0]).shape == (1, 512)
    with pytest.raises(ValueError, match="expected images"):
        ext(torch.randn(2, 4, 32, 32))


def test_audio_padding_is_left_out_of_the_mean():
    ext = build("hubert_base").eval()
    clip = 0.1 * torch.randn(16000)
    padded = torch.stack([torch.nn.functional.pad(clip, (0, 8000)), torch.nn.functional.pad(clip, (0, 8000))])
    with torch.no_grad():
        torch.testing.assert_close(ext(clip[None]), ext(padded)[:1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pool_frames", ["audio", "all"])
def test_whisper_log_mel_on_the_clips_device_equals_the_feature_extractor(pool_frames):
    """WhisperEncoder computes WhisperFeatureExtractor's log-mel spectrogram itself, where the clips are (no copy to
    the host): the same features as calling the extractor on each clip, for clips shorter than, equal to and
    longer than 30 s, zero-padded in one batch as collate pads them; and the pooled output of the encoder equals
    the one computed from the extractor's own features, its padded frames left out."""
    from extractors.audio import SAMPLE_RATE, _masked_mean, lengths, whisper_tiny

    ext = whisper_tiny(source="random", pool_frames=pool_frames).eval()
    g = torch.Generator().manual_seed(4)
    clips = [0.1 * torch.randn(k, generator=g) for k in (3 * SAMPLE_RATE, 30 * SAMPLE_RATE, 31 * SAMPLE_RATE + 7)]
    clips[0][-100:] = 0.0  # trailing silence reads as padding, in both paths
    batch = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    n = lengths(batch)
    want = ext.fe(
        [c[: int(k)].numpy() for c, k in zip(batch, n)], sampling_rate=SAMPLE_RATE, return_tensors="pt"
    ).input_features
    got = ext.log_mel(batch)
    assert got.shape == want.shape == (3, ext.fe.feature_size, 3000)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        h = ext.encoder(want).last_hidden_state
        per_s = h.shape[1] / 30
        frames = torch.tensor([min(h.shape[1], max(1, -(-int(k) * per_s // SAMPLE_RATE))) for k in n])
        ref = h.mean(1) if pool_frames == "all" else _masked_mean(h, frames)
        torch.testing.assert_close(ext(batch), ref, rtol=1e-4, atol=1e-4)


def test_real_size_configs():
    from extractors.text import text_config

    assert text_config("bert", "full").num_hidden_layers == 12 and text_config("bert", "full").hidden_size == 768
    assert text_config("distilbert", "full").n_layers == 6
    assert text_config("distilbert", "tiny", {"layers": 3}).n_layers == 3
    with pytest.raises(ValueError, match="random_size"):
        text_config("bert", "huge")


# ------------------------------------------------------------------ local weights, networking off
def _save_hf(name, folder: Path):
    """Save a tiny model the way scripts/fetch_weights.py saves the real one (save_pretrained)."""
    ext = build(name)
    if name in ("distilbert", "bert_base"):
        ext.model.save_pretrained(folder)
        ext.tokenizer.save_pretrained(folder)
    elif name == "hubert_base":
        ext.model.save_pretrained(folder)
    else:
        from transformers import WhisperModel

        whole = WhisperModel(ext.encoder.config)
        whole.encoder.load_state_dict(ext.encoder.state_dict())
        whole.save_pretrained(folder)
        ext.fe.save_pretrained(folder)
    return ext


@pytest.mark.parametrize("name", ["distilbert", "bert_base", "hubert_base", "whisper_tiny"])
def test_hf_weights_from_local_folder_offline(name, tmp_path, offline):
    ref = _save_hf(name, tmp_path / "model").eval()
    assert (tmp_path / "model" / "model.safetensors").is_file()
    ext = build(name, source=str(tmp_path / "model")).eval()
    x = SPECS[name][1]()
    with torch.no_grad():
        torch.testing.assert_close(ext(x), ref(x))


@pytest.mark.parametrize(
    "name,model_id", [("distilbert", "distilbert-base-uncased"), ("whisper_tiny", "openai/whisper-tiny")]
)
def test_hf_weights_from_fetch_cache_offline(name, model_id, tmp_path, offline):
    """The default hub source resolves to <SOFTSTEP_WEIGHTS>/hf/<id>, where fetch_weights puts it."""
    target = dict((w.extractor, w.target(tmp_path / "cache")) for w in PAPER_WEIGHTS)[name]
    assert target == tmp_path / "cache" / "hf" / model_id
    ref = _save_hf(name, target).eval()
    offline.setenv(W.ENV_CACHE, str(tmp_path / "cache"))
    cfg = OmegaConf.load(REPO / "configs" / "extractor" / f"{name}.yaml")
    assert cfg.builder.source == model_id
    ext = instantiate(cfg.builder, finetune=False, in_dim=None).eval()
    x = SPECS[name][1]()
    with torch.no_grad():
        torch.testing.assert_close(ext(x), ref(x))


def test_torchvision_weights_from_file_folder_and_cache_offline(tmp_path, offline):
    ref = build("resnet18", seed=7).eval()
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Identity()
    net.load_state_dict(ref.net.state_dict())
    full = torchvision.models.resnet18(weights=None).state_dict()  # what torchvision's own files hold (with fc)
    full.update(ref.net.state_dict())
    torch.save(full, tmp_path / "resnet18.pth")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = ref(x)
        torch.testing.assert_close(build("resnet18", source=str(tmp_path / "resnet18.pth")).eval()(x), want)
        torch.testing.assert_close(
            build("resnet18", source=str(tmp_path)).eval()(x), want
        )  # folder holding resnet18.pth
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in full.items()}, str(tmp_path / "r.safetensors"))
        torch.testing.assert_close(build("resnet18", source=str(tmp_path / "r.safetensors")).eval()(x), want)
        cache = tmp_path / "cache"
        target = dict((w.extractor, w.target(cache)) for w in PAPER_WEIGHTS)["resnet18"]
        target.parent.mkdir(parents=True)
        torch.save(full, target)
        offline.setenv(W.ENV_CACHE, str(cache))
        torch.testing.assert_close(build("resnet18", source="IMAGENET1K_V1").eval()(x), want)


def test_torchvision_weights_from_torch_home_offline(tmp_path, offline):
    import torchvision

    sd = torchvision.models.efficientnet_b0(weights=None).state_dict()
    url_file = Path(torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.url).name
    (tmp_path / "torch_home" / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(sd, tmp_path / "torch_home" / "hub" / "checkpoints" / url_file)
    assert build("efficientnet_b0", source="IMAGENET1K_V1").out_dim == 1280


def test_pickles_and_wrong_architectures_are_refused(tmp_path):
    torch.save({"conv1.weight": torch.zeros(1), "evil": Path("/")}, tmp_path / "bad.pth")  # not weights-only
    with pytest.raises(ValueError, match="bad.pth"):
        build("resnet18", source=str(tmp_path / "bad.pth"))
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="do not fit"):
        build("resnet34", source=str(tmp_path / "r18.pth"))


# ------------------------------------------------------------------ missing weights
@pytest.mark.parametrize(
    "name,what",
    [
        ("distilbert", "distilbert-base-uncased"),
        ("bert_base", "bert-base-uncased"),
        ("hubert_base", "facebook/hubert-base-ls960"),
        ("whisper_tiny", "openai/whisper-tiny"),
        ("resnet18", "resnet18"),
        ("resnet34", "resnet34"),
        ("efficientnet_b0", "efficientnet_b0"),
    ],
)
def test_missing_weight_offline_says_what_and_how_to_fetch(name, what, offline):
    cfg = OmegaConf.load(REPO / "configs" / "extractor" / f"{name}.yaml")
    with pytest.raises(W.WeightsNotFound) as e:
        call(cfg.builder, finetune=False, in_dim=None)
    msg = str(e.value)
    assert what in msg and "python scripts/fetch_weights.py --cache-dir DIR" in msg and "SOFTSTEP_WEIGHTS" in msg
    assert "HF_HUB_OFFLINE=1" in msg


def test_missing_local_folder_names_it(tmp_path, offline):
    with pytest.raises(W.WeightsNotFound, match="no_such_model"):
        build("bert_base", source=str(tmp_path / "no_such_model"))
    with pytest.raises(W.WeightsNotFound, match="nope.pth"):
        build("resnet34", source=str(tmp_path / "nope.pth"))
    with pytest.raises(ValueError, match="unknown source 'IMAGENET9K'"):
        build("resnet34", source="IMAGENET9K")


def test_fetch_weights_dry_run(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fetch_weights.py"), "--cache-dir", str(tmp_path / "c"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    for w in PAPER_WEIGHTS:
        assert str(w.target(tmp_path / "c")) in out.stdout and w.name in out.stdout
    assert "would fetch" in out.stdout and not (tmp_path / "c").exists()
    with pytest.raises(ValueError, match="unknown extractor"):
        W.fetch(tmp_path, PAPER_WEIGHTS, dry_run=True, only=["vgg"], log=lambda *_: None)


def test_paper_weights_are_each_extractor_configs_default_weights():
    """Every extractor config's default hub source is in the fetch list, once, with classes that exist."""
    import torchvision
    import transformers

    by_extractor = {w.extractor: w for w in PAPER_WEIGHTS}
    assert len(by_extractor) == len(PAPER_WEIGHTS)
    hub = {}
    for path in sorted(CONFIGS.glob("*.yaml")):
        cfg = OmegaConf.load(path)
        source = cfg.builder.get("source")
        if source in (None, "random", "package"):
            continue
        hub[cfg.name] = cfg
        w = by_extractor[cfg.name]
        assert w.name == source
        if cfg.builder._target_.startswith("extractors.vision."):
            assert w.kind == "torchvision" and w.target(Path("c")) == Path("c/torchvision") / f"{cfg.name}.pth"
            assert torchvision.models.get_model_weights(w.model)[w.name]  # a real torchvision weights name
        else:
            assert w.kind == "hf" and w.target(Path("c")) == Path("c/hf") / source
            assert getattr(transformers, w.model) and getattr(transformers, w.processor)
    assert set(hub) == set(by_extractor) == {p.stem for p in CONFIGS.glob("*.yaml")} - {"identity", "minilm"}


def test_paper_weights_follow_the_configs(tmp_path):
    """A changed source, a new config, or a random / local source changes the list; an unfetchable builder is refused."""
    for name in ("resnet34", "bert_base", "identity", "minilm"):
        (tmp_path / f"{name}.yaml").write_text((CONFIGS / f"{name}.yaml").read_text())
    cfg = OmegaConf.load(CONFIGS / "resnet34.yaml")
    cfg.name, cfg.builder.source = "resnet34_v2", "IMAGENET1K_V1"
    OmegaConf.save(cfg, tmp_path / "resnet34_v2.yaml")
    cfg = OmegaConf.load(CONFIGS / "bert_base.yaml")
    cfg.builder.source = "bert-large-uncased"
    OmegaConf.save(cfg, tmp_path / "bert_base.yaml")
    got = {w.extractor: (w.kind, w.name, w.model) for w in fetch_weights.paper_weights(tmp_path)}
    assert got == {
        "bert_base": ("hf", "bert-large-uncased", "BertModel"),
        "resnet34": ("torchvision", "IMAGENET1K_V1", "resnet34"),
        "resnet34_v2": ("torchvision", "IMAGENET1K_V1", "resnet34"),
    }
    for source in ("random", str(tmp_path / "weights.pth")):
        cfg.builder.source = source
        OmegaConf.save(cfg, tmp_path / "bert_base.yaml")
        assert "bert_base" not in {w.extractor for w in fetch_weights.paper_weights(tmp_path)}
    with pytest.raises(ValueError, match="no way to fetch hub weights 'some/model'"):
        W.hub_weight("mine", "mypackage.encoder", "some/model")
