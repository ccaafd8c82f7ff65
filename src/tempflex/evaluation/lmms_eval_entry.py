"""lmms-eval's entry point for TempFlex: a manifest naming the model class, with no lmms-eval import at load time.

pyproject registers ``tempflex = "tempflex.evaluation.lmms_eval_entry:manifest"`` in the group
``lmms_eval.models``. lmms-eval loads that group while it builds its model registry (importing
``lmms_eval.models``); an entry point whose module imported lmms-eval at the top would be imported halfway through
that registry's own import and fail, leaving ``tempflex`` unregistered when ``tempflex.evaluation.lmms_eval_model``
was imported first. This module imports nothing from lmms-eval until lmms-eval calls ``manifest()``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MODEL_CLASS_PATH", "manifest"]

MODEL_CLASS_PATH = "tempflex.evaluation.lmms_eval_model.TempFlexLmms"
"""The simple model class lmms-eval instantiates for ``--model tempflex``."""


def manifest() -> Any:
    """The ``lmms_eval.models`` entry point's payload: model id ``tempflex`` -> ``TempFlexLmms``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="tempflex", simple_class_path=MODEL_CLASS_PATH)
