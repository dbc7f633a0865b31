"""Display names and orders of heads and datasets: the one place tables, figures and scripts read them.

Head names and labels are the library's registry's (:data:`softstep.heads.HEAD_SPECS`, in the paper's Table 1
order); a head of your own that is not there sorts after them by name and is labelled by its name.
"""

from __future__ import annotations

from softstep.heads import HEAD_SPECS

#: The paper's six heads, in Table 1's column order.
HEADS: tuple[str, ...] = tuple(HEAD_SPECS)
NEIGHBOUR_HEADS: tuple[str, ...] = tuple(h for h in HEADS if HEAD_SPECS[h].needs_reference)
#: the library's heads' labels, and the baselines' (a k-NN regressor is no head of the library)
HEAD_LABELS = {**{h: spec.label for h, spec in HEAD_SPECS.items()}, "knn": "k-NN"}
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
