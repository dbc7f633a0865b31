"""SoftStep: learned, sparse, instance-wise similarity for neighbour-based regression heads.

Public API::

    from softstep import build_head, similarity, soft_step, log_soft_k_step
    head = build_head("nca_i", embed_dim=100, similarity="rbf")
    y_hat = head(z, z, y, exclude_self=True)          # training: the batch is its own reference set
    y_hat = head.predict(z_test, z_train, y_train)    # evaluation: memory-bounded over the training split

    from softstep import SoftStepRegressor              # a scikit-learn estimator (needs scikit-learn)
"""
from .functional import SIMILARITIES, log_soft_k_step, log_soft_step, row_minmax, similarity, soft_step
from .heads import HEADS, DiffKNNHead, LinearHead, NCAHead, NeighborHead, build_head
from .softstep import SoftKStep, SoftStep

__all__ = [
    "SIMILARITIES", "HEADS", "similarity", "row_minmax", "soft_step", "log_soft_step", "log_soft_k_step",
    "SoftStep", "SoftKStep", "LinearHead", "NeighborHead", "NCAHead", "DiffKNNHead", "build_head",
    "SoftStepRegressor",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``SoftStepRegressor`` is imported on first use, so ``import softstep`` never needs scikit-learn."""
    if name == "SoftStepRegressor":
        from .estimator import SoftStepRegressor

        return SoftStepRegressor
    raise AttributeError(f"module 'softstep' has no attribute {name!r}")
