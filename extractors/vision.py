"""torchvision CNNs (ResNet-18/34, EfficientNet-B0): images (B, C, H, W) → global-average-pooled features.

The ImageNet classifier is replaced by the identity, so the output is the pooled last feature
map: 512-d for ResNet-18/34, 1280-d for EfficientNet-B0. Normalisation is the data loader's job
(it differs per dataset in appendix B). A one-channel (grey) batch is repeated to three channels,
which keeps the pretrained first convolution as it is (equivalent to summing its weights over
the colour channels); so RSNA's grey mean/std-0.5 images go in unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from . import weights as W
from .base import Extractor

#: arch → (output width, name of the classifier attribute to remove)
BACKBONES = {"resnet18": (512, "fc"), "resnet34": (512, "fc"), "efficientnet_b0": (1280, "classifier")}


class TorchvisionEncoder(Extractor):
    modality, pooling = "image", "avgpool"

    def __init__(self, net: nn.Module, out_dim: int, cache_key: str):
        super().__init__()
        self.net, self.out_dim, self.cache_key = net, int(out_dim), cache_key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"{self.cache_key}: expected images (B, 1 or 3, H, W); got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x.float())

    def train(self, mode: bool = True):
        """A frozen extractor stays in eval mode (BatchNorm statistics and dropout unchanged)."""
        return super().train(mode and self.finetune)


def build(arch: str, source: str = "IMAGENET1K_V1", finetune: bool = False, seed: int = 0, **_) -> TorchvisionEncoder:
    """``arch`` with weights from ``source`` (see :mod:`extractors.weights`); classifier removed."""
    import torchvision

    if arch not in BACKBONES:
        raise ValueError(f"unknown torchvision arch {arch!r}; known: {', '.join(BACKBONES)}")
    out_dim, head = BACKBONES[arch]
    source = str(source)
    sd = W.torchvision_state_dict(arch, torchvision.models.get_model_weights(arch), source, extractor=arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torchvision.models.get_model(arch, weights=None)
    setattr(net, head, nn.Identity())
    if sd is not None:
        sd = {k.removeprefix("net."): v for k, v in sd.items()}
        missing, unexpected = net.load_state_dict(sd, strict=False)
        unexpected = [k for k in unexpected if not k.startswith(f"{head}.")]
        if missing or unexpected:
            raise ValueError(
                f"extractor {arch!r}: the weights from {source} do not fit {arch}: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
    key = f"{arch}-{f'random-seed{int(seed)}' if source == 'random' else source}"
    return TorchvisionEncoder(net, out_dim, key).set_finetune(finetune)


def resnet18(source: str = "IMAGENET1K_V1", finetune: bool = False, **kw) -> TorchvisionEncoder:
    return build("resnet18", source, finetune, **kw)


def resnet34(source: str = "IMAGENET1K_V1", finetune: bool = False, **kw) -> TorchvisionEncoder:
    return build("resnet34", source, finetune, **kw)


def efficientnet_b0(source: str = "IMAGENET1K_V1", finetune: bool = False, **kw) -> TorchvisionEncoder:
    return build("efficientnet_b0", source, finetune, **kw)
