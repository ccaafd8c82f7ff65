"""The four-stage recipe as data: which modules train, at which learning rate (``recipes/stage*.yaml``).

``load_stage(3)`` (or a path to your own YAML) gives a ``Stage``; ``apply_stage(model, stage)`` freezes
every parameter outside ``stage.trainable`` (no gradient, hence no optimiser state) and switches TFF on or
off; ``parameter_groups(model, stage)`` gives the optimiser one group per trained module with its rate.

    >>> stage = load_stage(3)
    >>> stage.trainable
    {'temporal_fusion': 0.0005, 'merger': 1e-05}
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

__all__ = ["MODULES", "Stage", "apply_stage", "load_stage", "parameter_groups"]

MODULES = ("vision_tower", "temporal_fusion", "merger", "language_model")
"""The model's top-level parts that a stage may train."""


@dataclass(frozen=True)
class Stage:
    """One training stage: module -> learning rate, and the schedule the paper gives for it."""

    name: str
    trainable: dict[str, float]
    use_temporal_fusion: bool
    epochs: float = 1
    global_batch_size: int = 512
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    max_frames: int = 64
    data: str = ""


def load_stage(stage: int | str | Path) -> Stage:
    """A built-in stage (``1``-``4``, or a recipe name like ``"stage1_projector_only"``) or a YAML file."""
    if isinstance(stage, int) or (isinstance(stage, str) and stage.isdigit()):
        stage = f"stage{int(stage)}"
    path = Path(str(stage))
    if path.suffix in (".yaml", ".yml") and path.exists():
        text = path.read_text()
    else:
        recipe = importlib.resources.files("tempflex.train") / "recipes" / f"{stage}.yaml"
        if not recipe.is_file():
            raise ValueError(f"no stage {stage!r}: give 1-4, a recipe name, or a YAML file path")
        text = recipe.read_text()
    values: dict[str, Any] = yaml.safe_load(text)
    unknown = set(values.get("trainable", {})) - set(MODULES)
    if unknown:
        raise ValueError(f"stage {values.get('name')!r} trains unknown modules {sorted(unknown)}; know {MODULES}")
    values["trainable"] = {name: float(rate) for name, rate in values["trainable"].items()}
    return Stage(**values)


def apply_stage(model: nn.Module, stage: Stage) -> None:
    """Freeze everything the stage does not train, unfreeze what it does, and set ``use_temporal_fusion``."""
    for name in MODULES:
        for parameter in getattr(model, name).parameters():
            parameter.requires_grad_(name in stage.trainable)
    model.config.use_temporal_fusion = stage.use_temporal_fusion


def parameter_groups(model: nn.Module, stage: Stage, *, weight_decay: float = 0.0) -> list[dict]:
    """Optimiser groups: one per trained module, at the stage's rate (trainable parameters only)."""
    groups = []
    for name, rate in stage.trainable.items():
        parameters = [p for p in getattr(model, name).parameters() if p.requires_grad]
        if parameters:
            groups.append({"params": parameters, "lr": rate, "weight_decay": weight_decay, "name": name})
    return groups
