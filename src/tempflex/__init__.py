"""TempFlex-VL: native-resolution SigLIP2 encoding, Temporal Fiber Fusion and a 2x2 patch merger.

Dimension glossary (used in every shape comment):

- ``B``: batch (clips, or samples)
- ``F``: frames of a clip (1 for an image)
- ``P``: patches per frame, ``h * w`` on a grid of ``h`` rows and ``w`` columns of 16x16-pixel patches
- ``D``: vision feature width (1152 for SigLIP2-so400m)
- ``H``, ``W``: image height and width in pixels
- ``E``: the language model's hidden size

Data flow: pixels -> ``vision.VisionTower`` ``[F, h*w, D]`` -> ``fusion.TemporalFiberFusion`` over
``[1, F, h*w, D]`` -> ``merger.PatchMerger`` ``[F, h/2*w/2, E]`` -> language model. Token counts come from
``token_budget``.

Load a model with ``tempflex.load(spec, device=..., dtype=...)``: a preset name, a saved folder, or a
``(vision, language)`` pair of released checkpoints (``tempflex.loading``). The public names load on first use;
transformers' ``AutoModelForImageTextToText`` / ``AutoProcessor`` know a saved TempFlex folder once the model code
is imported (``tempflex.load``, ``from tempflex import TempFlexForConditionalGeneration``, ...), or with
``trust_remote_code=True`` (``tempflex.auto_code``).
"""

from __future__ import annotations

from tempflex.lazy import lazy_exports

_PUBLIC = {
    "PatchMerger": "tempflex.merger",
    "TempFlexConfig": "tempflex.configuration",
    "TempFlexForConditionalGeneration": "tempflex.modeling",
    "TempFlexProcessor": "tempflex.processing",
    "TemporalFiberFusion": "tempflex.fusion",
    "VisionTower": "tempflex.vision",
    "assemble": "tempflex.assembly",
    "baseline_image_tokens": "tempflex.token_budget",
    "fit_image": "tempflex.token_budget",
    "gated_memory_scan": "tempflex.scan",
    "load": "tempflex.loading",
    "num_image_tokens": "tempflex.token_budget",
    "num_video_tokens": "tempflex.token_budget",
    "patchify": "tempflex.vision",
    "pixel_unshuffle_2x2": "tempflex.merger",
}
"""Each public name and the module that defines it, imported on first use (PEP 562): ``import tempflex`` itself
imports neither torch nor transformers, so ``tempflex tokens`` and ``tempflex.media`` start in a fraction of a
second. The modules that define the config, the model and the processor register them with transformers' Auto
classes when they are imported (``tempflex.configuration``, ``tempflex.modeling``, ``tempflex.processing``)."""


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)

__version__ = "0.1.0"

__all__ = sorted(_PUBLIC)
