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
``(vision, language)`` pair of released checkpoints (``tempflex.loading``).
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from tempflex.assembly import assemble
from tempflex.configuration import TempFlexConfig
from tempflex.fusion import TemporalFiberFusion, gated_memory_scan
from tempflex.loading import load
from tempflex.merger import PatchMerger, pixel_unshuffle_2x2
from tempflex.modeling import TempFlexForConditionalGeneration
from tempflex.processing import TempFlexProcessor
from tempflex.token_budget import baseline_image_tokens, fit_image, num_image_tokens, num_video_tokens
from tempflex.vision import VisionTower, patchify

# Let transformers' Auto classes load a saved TempFlex folder (AutoConfig / AutoModel... / AutoProcessor).
# Registration fills transformers' own extension tables; exist_ok makes a re-import harmless.
AutoConfig.register(TempFlexConfig.model_type, TempFlexConfig, exist_ok=True)
AutoModel.register(TempFlexConfig, TempFlexForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(TempFlexConfig, TempFlexForConditionalGeneration, exist_ok=True)
AutoProcessor.register(TempFlexConfig, TempFlexProcessor, exist_ok=True)

__version__ = "0.1.0"

__all__ = [
    "PatchMerger",
    "TempFlexConfig",
    "TempFlexForConditionalGeneration",
    "TempFlexProcessor",
    "TemporalFiberFusion",
    "VisionTower",
    "assemble",
    "baseline_image_tokens",
    "fit_image",
    "gated_memory_scan",
    "load",
    "num_image_tokens",
    "num_video_tokens",
    "patchify",
    "pixel_unshuffle_2x2",
]
