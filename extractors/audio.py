"""Speech encoders (transformers): waveforms (B, T) at 16 kHz → features mean-pooled over time.

- HuBERT-base (facebook/hubert-base-ls960, 768-d): the raw waveform, normalised per clip to
  zero mean and unit variance (``normalize``, as its Wav2Vec2FeatureExtractor does), through the
  CNN feature encoder and 12 transformer layers; the last hidden states (one per 20 ms) are
  averaged.
- Whisper-tiny encoder (openai/whisper-tiny, 384-d): each clip becomes WhisperFeatureExtractor's
  80-bin log-mel spectrogram, padded or cut to 30 s (its steps, computed on the clips' device:
  ``WhisperEncoder.log_mel``); the encoder's last hidden states
  (1,500 frames of 20 ms) are averaged over the frames that hold audio (``pool_frames: audio``)
  or over all 1,500 (``all``).

``collate`` zero-pads clips of unequal length; the trailing zeros of each row are taken as
padding. HuBERT then encodes the clips of each length separately, without their padding (its
base model takes no attention mask); Whisper pads every clip to 30 s anyway and leaves the
padded frames out of the mean. The paper's loaders give fixed-length clips, so nothing is
padded there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import weights as W
from .base import Extractor
from .random_init import random_config, seeded, sizes

SAMPLE_RATE = 16000
TINY_AUDIO = {"layers": 2, "hidden": 32, "heads": 2, "intermediate": 64, "conv": 32}


def lengths(x: torch.Tensor) -> torch.Tensor:
    """Per row, the index after the last non-zero sample (at least 1)."""
    nz = (x != 0).flip(-1).int().argmax(-1)
    any_nz = (x != 0).any(-1)
    return torch.where(any_nz, x.shape[-1] - nz, torch.ones_like(nz)).clamp_min(1)


def _masked_mean(h: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    mask = (torch.arange(h.shape[1], device=h.device)[None, :] < n[:, None]).to(h.dtype).unsqueeze(-1)
    return (h * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def _as_batch(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2:
        raise ValueError(f"expected waveforms (B, T); got shape {tuple(x.shape)}")
    return x.float()


def _hubert_tiny(config_cls, t: dict):
    """A small HuBERT config (``config_cls``: transformers' HubertConfig) of sizes ``t``."""
    return config_cls(
        hidden_size=t["hidden"],
        num_hidden_layers=t["layers"],
        num_attention_heads=t["heads"],
        intermediate_size=t["intermediate"],
        conv_dim=(t["conv"],) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )


def _whisper_full(config_cls):
    """whisper-tiny's sizes (``config_cls``: transformers' WhisperConfig): 4 encoder layers, d_model 384, 6 heads."""
    return config_cls(
        d_model=384,
        encoder_layers=4,
        encoder_attention_heads=6,
        encoder_ffn_dim=1536,
        decoder_layers=4,
        decoder_attention_heads=6,
        decoder_ffn_dim=1536,
    )


def _whisper_tiny(config_cls, t: dict):
    """A small Whisper config (``config_cls``: transformers' WhisperConfig) of sizes ``t``."""
    return config_cls(
        d_model=t["hidden"],
        encoder_layers=t["layers"],
        encoder_attention_heads=t["heads"],
        encoder_ffn_dim=t["intermediate"],
        decoder_layers=1,
        decoder_attention_heads=t["heads"],
        decoder_ffn_dim=t["intermediate"],
        vocab_size=64,
        max_target_positions=8,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )


class HubertEncoder(Extractor):
    modality, pooling = "audio", "mean"

    def __init__(self, model, *, normalize: bool = True, cache_key: str = ""):
        super().__init__()
        self.model, self.normalize = model, bool(normalize)
        self.out_dim = int(model.config.hidden_size)
        self.cache_key = f"{cache_key}-norm{int(self.normalize)}"

    def forward(self, x) -> torch.Tensor:
        x = _as_batch(x).to(next(self.model.parameters()).device)
        n = lengths(x)
        if bool((n == x.shape[1]).all()):
            return self._encode(x)
        out = torch.empty(x.shape[0], self.out_dim, device=x.device)
        for k in n.unique():  # clips of one length together, without their padding (HuBERT-base takes no mask)
            rows = (n == k).nonzero().squeeze(1)
            out[rows] = self._encode(x[rows, : int(k)]).to(out.dtype)
        return out

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-7)
        return self.model(x).last_hidden_state.mean(1)

    def train(self, mode: bool = True):
        return super().train(mode and self.finetune)


def hubert_base(
    source: str = "facebook/hubert-base-ls960",
    normalize: bool = True,
    finetune: bool = False,
    random_size: str = "tiny",
    tiny: dict | None = None,
    seed: int = 0,
    **_,
) -> HubertEncoder:
    from transformers import HubertConfig, HubertModel

    source = str(source)
    if source == "random":  # full: hubert-base sizes, 12 layers, hidden 768
        cfg = random_config(
            random_size, full=HubertConfig, tiny=lambda: _hubert_tiny(HubertConfig, sizes(TINY_AUDIO, tiny))
        )
        model = seeded(HubertModel, cfg, seed)
        key = f"hubert-random-{random_size}-seed{seed}"
    else:
        model = W.hf_load(lambda s, **kw: HubertModel.from_pretrained(s, **kw), source, extractor="hubert_base")
        key = f"hubert-{source}"
    return HubertEncoder(model.eval(), normalize=normalize, cache_key=key).set_finetune(finetune)


class WhisperEncoder(Extractor):
    modality, pooling = "audio", "mean"

    def __init__(self, encoder, feature_extractor, *, pool_frames: str = "audio", cache_key: str = ""):
        super().__init__()
        if pool_frames not in ("audio", "all"):
            raise ValueError(f"pool_frames must be 'audio' or 'all'; got {pool_frames!r}")
        self.encoder, self.fe, self.pool_frames = encoder, feature_extractor, pool_frames
        self.out_dim = int(encoder.config.d_model)
        self.cache_key = f"{cache_key}-pool{pool_frames}"
        # the feature extractor's constants, moved with the module (no copy from the host per batch)
        self.register_buffer("window", torch.hann_window(feature_extractor.n_fft), persistent=False)
        self.register_buffer(
            "mel_filters",
            torch.as_tensor(feature_extractor.mel_filters, dtype=torch.float32).T.contiguous(),
            persistent=False,
        )

    def forward(self, x) -> torch.Tensor:
        x = _as_batch(x).to(self.window.device)
        h = self.encoder(self.log_mel(x).to(next(self.encoder.parameters()).dtype)).last_hidden_state
        if self.pool_frames == "all":
            return h.mean(1)
        per_second = h.shape[1] / (self.fe.n_samples / SAMPLE_RATE)  # 1500 frames / 30 s
        frames = torch.ceil(lengths(x).double() / SAMPLE_RATE * per_second).clamp(
            1, h.shape[1]
        )  # on the device: no sync
        return _masked_mean(h, frames)

    def log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """WhisperFeatureExtractor's log-mel spectrogram of zero-padded clips (B, T), computed where ``x`` is.

        The steps of transformers' extractor (its torch path): each clip cut or zero-padded to
        ``n_samples`` (30 s), the STFT with a Hann window, power, its mel filters, log10 floored at 1e-10 and at the
        clip's maximum − 8, then (x + 4) / 4. The same numbers as ``fe([clip, ...])`` to rounding (tested); on a GPU
        it spares a copy to the host and a CPU STFT per batch. An extractor configured with dither falls back to
        calling ``fe`` (its noise is drawn there)."""
        if getattr(self.fe, "dither", 0.0):
            n = lengths(x).cpu()
            waves = [row[: int(k)].cpu().numpy() for row, k in zip(x, n)]
            return self.fe(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features.to(x.device)
        target = self.fe.n_samples
        x = F.pad(x[:, :target].float(), (0, max(0, target - x.shape[1])))
        with torch.autocast(x.device.type, enabled=False):  # float32 as the extractor computes it, under bf16 too
            stft = torch.stft(x, self.fe.n_fft, self.fe.hop_length, window=self.window.float(), return_complex=True)
            power = stft[..., :-1].abs() ** 2
            log_spec = (self.mel_filters.float() @ power).clamp_min(1e-10).log10()
            log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
            return (log_spec + 4.0) / 4.0

    def train(self, mode: bool = True):
        return super().train(mode and self.finetune)


def whisper_tiny(
    source: str = "openai/whisper-tiny",
    pool_frames: str = "audio",
    finetune: bool = False,
    random_size: str = "tiny",
    tiny: dict | None = None,
    seed: int = 0,
    **_,
) -> WhisperEncoder:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    source = str(source)
    if source == "random":
        cfg = random_config(
            random_size,
            full=lambda: _whisper_full(WhisperConfig),
            tiny=lambda: _whisper_tiny(WhisperConfig, sizes(TINY_AUDIO, tiny)),
        )
        from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

        encoder = seeded(HFWhisperEncoder, cfg, seed)
        fe = WhisperFeatureExtractor(feature_size=cfg.num_mel_bins)
        key = f"whisper-random-{random_size}-seed{seed}"
    else:
        model = W.hf_load(lambda s, **kw: WhisperModel.from_pretrained(s, **kw), source, extractor="whisper_tiny")
        encoder = model.get_encoder()
        fe = W.hf_load(
            lambda s, **kw: WhisperFeatureExtractor.from_pretrained(s, **kw),
            source,
            extractor="whisper_tiny",
            what="feature extractor",
        )
        key = f"whisper-{source}"
    return WhisperEncoder(encoder.eval(), fe, pool_frames=pool_frames, cache_key=key).set_finetune(finetune)
