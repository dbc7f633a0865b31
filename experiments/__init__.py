"""The experiments: the protocol, inputs, the result store, saved models, reports and sweeps.

Importing it registers the config resolver ``${paper_tuned:<head>,<key>}`` (the paper's tuned similarity,
embed_dim or batch_size of a head, from :data:`softstep.TUNED`), which ``configs/head/*.yaml`` use.
"""

from omegaconf import OmegaConf


def _paper_tuned(head: str, key: str):
    from softstep.heads import TUNED  # on first use: importing experiments stays light

    return TUNED[head][key]


OmegaConf.register_new_resolver("paper_tuned", _paper_tuned, replace=True)
