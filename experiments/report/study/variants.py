"""What a result file ran, read from its resolved config (``config``) and its head name, never from a list of runs.

- **Protocol**: ``config.protocol.name`` (``authors``, ``learn``, ``tuned``, …); :data:`NO_PROTOCOL` when absent.
- **Base head**: the head of the paper (:data:`experiments.report.names.HEADS`) a head name extends: ``nca_i`` is
  itself, ``nca_i_frozen`` is ``nca_i`` (the longest paper head followed by ``_``); any other name is itself.
- **Control** (:data:`CONTROLS`): ``head.control``, which makes the run a control of its base head: the step frozen
  at its initial draw (``frozen_step``) or the same head built without it (``no_step``). A control is compared
  against, never ranked.
- **Setting** (:data:`SETTINGS`): a config value other than its default that makes a comparison of its own, e.g.
  ``head.module.norm: exclude_self`` (Algorithm 2's line 13 without the query's own similarity). The heads of one
  setting are ranked together, and a head without that key (the linear head) joins every setting of its protocol.

A variant's label is its setting labels then its control's, joined by ``, ``; the plain run's is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.report.names import HEADS

NO_PROTOCOL = "(none)"
#: (config path, the value that marks the control, label)
CONTROLS = (
    ("head.control", "frozen_step", "frozen step"),
    ("head.control", "no_step", "no step"),
)
FROZEN, NO_STEP = (label for _, _, label in CONTROLS)
#: (config path, default): a value other than the default is a setting, labelled ``<last key>=<value>``
SETTINGS = (
    ("head.module.norm", "paper"),
    ("head.module.power_floor", None),
    ("trainer.embed_passes", 1),
    ("extractor.finetune", False),
)
#: Protocols in the order the report shows them; others follow by name.
PROTOCOL_ORDER = ("authors", "learn", "tuned")


def config_value(config: dict, path: str, default=None):
    """The value at dotted ``path`` of a resolved config, ``default`` where any key on the way is missing."""
    node = config
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def protocol_of(result: dict) -> str:
    name = config_value(result.get("config") or {}, "protocol.name")
    return str(name) if name else NO_PROTOCOL


def protocol_sort_key(protocol: str) -> tuple:
    return (PROTOCOL_ORDER.index(protocol), "") if protocol in PROTOCOL_ORDER else (len(PROTOCOL_ORDER), protocol)


def base_head(name: str) -> str:
    """The paper head that ``name`` is a variant of (``nca_i_frozen`` → ``nca_i``), or ``name`` itself."""
    if name in HEADS:
        return name
    parents = [h for h in HEADS if name.startswith(h + "_")]
    return max(parents, key=len) if parents else name


@dataclass(frozen=True, order=True)
class Variant:
    """A run's setting labels (a tuple) and its control label (empty for none)."""

    setting: tuple = ()
    control: str = ""

    @property
    def label(self) -> str:
        return ", ".join((*self.setting, *([self.control] if self.control else [])))


def variant_of(result: dict) -> Variant:
    config = result.get("config") or {}
    control = next((label for path, mark, label in CONTROLS if config_value(config, path) == mark), "")
    setting = tuple(
        f"{path.rsplit('.', 1)[-1]}={value}"
        for path, default in SETTINGS
        if (value := config_value(config, path)) is not None and value != default
    )
    return Variant(setting, control)


def stepless_head(head: str) -> str | None:
    """The paper head of the same family without a step (``nca_g``, ``nca_i`` → ``nca``), from the library's head
    registry (the same head class with ``step=None``); None when the family has none (DiffKNN) or the head
    itself has no step."""
    from softstep import HEAD_SPECS

    if not has_step(head):
        return None
    cls = HEAD_SPECS[head].cls
    for name, spec in HEAD_SPECS.items():
        if spec.cls is cls and "step" in spec.keywords and spec.keywords["step"] is None:
            return name
    return None


def has_step(head: str) -> bool:
    """Whether a paper head learns a step (SoftStep or SoftKStep)."""
    from softstep import HEAD_SPECS

    spec = HEAD_SPECS.get(head)
    return spec is not None and spec.keywords.get("step") is not None
