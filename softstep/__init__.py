"""SoftStep: learned, sparse, instance-wise similarity for neighbour-based regression heads.

>>> import torch, softstep
>>> head = softstep.build_head("nca_i", embed_dim=8, similarity="rbf")
>>> z, y = torch.randn(16, 8), torch.rand(16)
>>> head(z, z, y, exclude_self=True).shape   # training: the batch is its own reference set
torch.Size([16])
>>> head.predict(z[:4], z, y).shape          # evaluation: memory-bounded over the training split
torch.Size([4])

``softstep.SoftStepRegressor`` is a scikit-learn estimator, imported on first use.
"""

from .diffknn import DiffKNNHead
from .functional import log_soft_k_step, log_soft_step, row_minmax, soft_step
from .heads import HEAD_SPECS, HEADS, TUNED, build_head
from .linear import LinearHead
from .nca import NCAHead
from .neighbors import NeighborHead
from .similarities import SIMILARITIES, similarity
from .step import SoftKStep, SoftStep

__all__ = [
    "SIMILARITIES",
    "HEADS",
    "HEAD_SPECS",
    "TUNED",
    "similarity",
    "row_minmax",
    "soft_step",
    "log_soft_step",
    "log_soft_k_step",
    "SoftStep",
    "SoftKStep",
    "LinearHead",
    "NeighborHead",
    "NCAHead",
    "DiffKNNHead",
    "build_head",
    "SoftStepRegressor",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``SoftStepRegressor`` is imported on first use, so ``import softstep`` never needs scikit-learn."""
    if name == "SoftStepRegressor":
        from .estimator import SoftStepRegressor

        return SoftStepRegressor
    raise AttributeError(f"module 'softstep' has no attribute {name!r}")
