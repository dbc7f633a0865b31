"""Reference models beside the heads: scikit-learn's k-NN with k chosen on the validation split."""

from __future__ import annotations

import numpy as np

KS = range(1, 51)


def tuned_knn(x: np.ndarray, y: np.ndarray, train, val, ks=KS):
    """``(KNeighborsRegressor fitted on x[train], k)`` with the k of ``ks`` (at most |train|) whose validation
    MSE is lowest (the smallest such k on ties)."""
    from sklearn.neighbors import KNeighborsRegressor

    fits = {k: KNeighborsRegressor(n_neighbors=k).fit(x[train], y[train]) for k in ks if k <= len(train)}
    k = min(fits, key=lambda k: float(np.mean((fits[k].predict(x[val]) - y[val]) ** 2)))
    return fits[k], k
