"""Display names and orders of heads and datasets: the one place tables, figures and scripts read them.

Head names themselves are the library's (:data:`softstep.HEADS`, in the paper's Table 1 order); a head
of your own that is not there sorts after them by name and is labelled by its name.
"""

from __future__ import annotations

from softstep import HEADS as _HEAD_REGISTRY

#: The paper's six heads, in Table 1's column order.
HEADS: tuple[str, ...] = tuple(_HEAD_REGISTRY)
NEIGHBOUR_HEADS: tuple[str, ...] = tuple(h for h in HEADS if _HEAD_REGISTRY[h].func.needs_reference)
HEAD_LABELS = {
    "linear": "Linear",
    "nca": "NCA",
    "nca_g": "NCA g",
    "nca_i": "NCA i",
    "diffknn_g": "DiffKNN g",
    "diffknn_i": "DiffKNN i",
    "knn": "k-NN",
}
#: Table 1's row order; other datasets follow alphabetically.
DATASET_ORDER = (
    "rsna",
    "medsegbench",
    "adresso",
    "coughvid",
    "nosemic",
    "udacity",
    "pitchfork",
    "houses",
    "books",
    "austin",
)
DATASET_LABELS = {
    "rsna": "RSNA",
    "medsegbench": "MedSegBench",
    "adresso": "ADReSSo",
    "coughvid": "CoughVid",
    "nosemic": "NoseMic",
    "udacity": "Udacity",
    "pitchfork": "Pitchfork",
    "houses": "Houses",
    "books": "Books",
    "austin": "Austin",
}
SIMILARITY_ORDER = ("l2", "cos", "rbf", "dot")


def head_label(head: str) -> str:
    return HEAD_LABELS.get(head, head)


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def _sort_key(order: tuple[str, ...], name: str) -> tuple:
    return (order.index(name), "") if name in order else (len(order), name)


def head_sort_key(head: str) -> tuple:
    return _sort_key(HEADS, head)


def dataset_sort_key(dataset: str) -> tuple:
    return _sort_key(DATASET_ORDER, dataset)
