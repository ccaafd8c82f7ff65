"""``TempFlexConfig``: a composite transformers config (vision + text sub-configs) and its presets.

Sub-configs: ``vision_config`` is a ``Siglip2VisionConfig``; ``text_config`` is any causal-LM config that
``AutoConfig`` knows (``qwen3`` by default, ``gemma3_text`` for Gemma3). The other fields carry TFF, the
merger, the token budgets and the placeholder token ids (defaults: Qwen3's published ids).

Presets (``TempFlexConfig.from_preset(name)``):

- ``"tiny"``: a forward in well under a second on a CPU (vision width 64, 2+2 layers, LM width 64 and a
  vocabulary of ``TINY_VOCAB_SIZE`` tokens that matches ``tempflex.tokenization.build_tiny_tokenizer``);
- ``"qwen3-4b"``: SigLIP2-so400m-patch16-naflex + Qwen3-4B, the real shapes;
- ``"gemma3-4b"``: SigLIP2-so400m-patch16-naflex + Gemma3-4B's text model, the real shapes.

The real presets are meant for counting parameters on the meta device, or as the config to which
``from_components`` loads weights::

    >>> config = TempFlexConfig.from_preset("qwen3-4b")
    >>> config.vision_config.hidden_size, config.text_config.hidden_size
    (1152, 2560)
"""

from __future__ import annotations

import copy
import os
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig, Siglip2VisionConfig
from transformers.configuration_utils import SubConfigSpec

from tempflex.auto_code import AUTO_MAP, write_shim
from tempflex.fusion import PATHS, check_paths

__all__ = ["PRESETS", "TINY_VOCAB_SIZE", "TempFlexConfig"]

TINY_VOCAB_SIZE = 512
"""Vocabulary of the ``tiny`` preset's tokenizer (a byte-level BPE built in-process, no download)."""

# Qwen3's published special-token ids (tokenizer_config.json of Qwen/Qwen3-4B).
QWEN3_TOKEN_IDS = {
    "image_token_id": 151655,  # <|image_pad|>
    "video_token_id": 151656,  # <|video_pad|>
    "vision_start_token_id": 151652,  # <|vision_start|>
    "vision_end_token_id": 151653,  # <|vision_end|>
}

SIGLIP2_SO400M_PATCH16_NAFLEX = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "num_patches": 256,  # a 16x16 positional table, resized per frame
    "patch_size": 16,
    "vision_use_head": False,  # TempFlex reads the patch features, not the pooled embedding
}

QWEN3_4B = {
    "model_type": "qwen3",
    "vocab_size": 151936,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "tie_word_embeddings": True,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}

GEMMA3_4B_TEXT = {
    "model_type": "gemma3_text",
    "vocab_size": 262208,
    "hidden_size": 2560,
    "intermediate_size": 10240,
    "num_hidden_layers": 34,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "query_pre_attn_scalar": 256,
    "sliding_window": 1024,
    "max_position_embeddings": 131072,
    "rope_parameters": {
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
    },
    "tie_word_embeddings": True,
    "bos_token_id": 2,
    "eos_token_id": [1, 106],
    "pad_token_id": 0,
}

# Gemma3's image tokens in its published tokenizer: <start_of_image>, <image_soft_token>, <end_of_image>.
GEMMA3_TOKEN_IDS = {
    "image_token_id": 262144,
    "video_token_id": 262145,  # <video_soft_token>, which TempFlex appends after the 262,145-token vocabulary
    "vision_start_token_id": 255999,
    "vision_end_token_id": 256000,
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "vision_config": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_patches": 16,
            "patch_size": 16,
            "vision_use_head": False,
        },
        "text_config": {
            "model_type": "qwen3",
            "vocab_size": TINY_VOCAB_SIZE,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 8192,
            "tie_word_embeddings": True,
        },
        "fusion_num_layers": 2,
        # ids of build_tiny_tokenizer(): Qwen3's added tokens, in Qwen3's order, after 486 regular tokens
        "image_token_id": 498,
        "video_token_id": 499,
        "vision_start_token_id": 495,
        "vision_end_token_id": 496,
    },
    "qwen3-4b": {"vision_config": SIGLIP2_SO400M_PATCH16_NAFLEX, "text_config": QWEN3_4B, **QWEN3_TOKEN_IDS},
    "gemma3-4b": {"vision_config": SIGLIP2_SO400M_PATCH16_NAFLEX, "text_config": GEMMA3_4B_TEXT, **GEMMA3_TOKEN_IDS},
}


@strict(accept_kwargs=True)
class TempFlexConfig(PreTrainedConfig):
    """Configuration of ``TempFlexForConditionalGeneration``.

    Fields beyond the two sub-configs:

    - ``use_temporal_fusion``: run TFF on videos (off: the paper's stage-1/2 model);
    - ``fuse_images``: also run TFF on images as one-frame clips (default on, as the paper's Figure 2);
    - ``fusion_*``: ``TemporalFiberFusion`` arguments (paper: 4 layers, kernel hidden = D, FFN hidden = 2D,
      frequencies {1, 2, 4, 8, 16}, all three paths);
    - ``max_image_tokens`` / ``min_image_tokens``: LLM tokens per image (``token_budget.fit_image``);
    - ``max_tokens_per_frame`` and ``max_frames_to_llm``: the video budget; TFF sees every frame, then frames
      are average-pooled in time to at most ``max_frames_to_llm`` (``None``: no pooling);
    - ``*_token_id``: placeholder and delimiter tokens of the tokenizer;
    - ``generation_vocab_size``: set when assembly grew the LLM's embedding for placeholder tokens (Gemma 3
      270M / 1B): the LLM's own vocabulary size; logits of the rows from it on are ``-inf`` (``None``: no rows
      were added).
    """

    model_type: ClassVar[str] = "tempflex"
    # FSDP2 (train.engines): the LM brings its own plan (one group per decoder layer); the vision tower, TFF and
    # merger stay in the root group. transformers' default plan names a text model's modules, which we do not have.
    base_model_fsdp_plan: ClassVar[dict[str, str]] = {}
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "vision_config": SubConfigSpec(config_class=Siglip2VisionConfig),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen3"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    use_temporal_fusion: bool = True
    fuse_images: bool = True
    fusion_num_layers: int = 4
    fusion_kernel_hidden: int | None = None
    fusion_ffn_hidden: int | None = None
    fusion_frequencies: list[int] | tuple[int, ...] = (1, 2, 4, 8, 16)
    fusion_paths: list[str] | tuple[str, ...] = PATHS
    max_image_tokens: int = 2048
    min_image_tokens: int = 4
    max_tokens_per_frame: int = 256
    max_frames_to_llm: int | None = 32
    image_token_id: int = QWEN3_TOKEN_IDS["image_token_id"]
    video_token_id: int = QWEN3_TOKEN_IDS["video_token_id"]
    vision_start_token_id: int = QWEN3_TOKEN_IDS["vision_start_token_id"]
    vision_end_token_id: int = QWEN3_TOKEN_IDS["vision_end_token_id"]
    generation_vocab_size: int | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.fusion_frequencies = [int(w) for w in self.fusion_frequencies]
        self.fusion_paths = list(check_paths(self.fusion_paths))
        if self.max_frames_to_llm is not None and self.max_frames_to_llm < 1:
            raise ValueError(f"max_frames_to_llm must be >= 1 or None, got {self.max_frames_to_llm}")
        if self.image_token_id == self.video_token_id:
            raise ValueError(f"image_token_id and video_token_id must differ, both are {self.image_token_id}")
        # the LM's own setting decides whether its head shares the embedding matrix
        self.tie_word_embeddings = bool(getattr(self.text_config, "tie_word_embeddings", False))

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save ``config.json`` with an ``auto_map`` and ``tempflex_auto.py``, so that transformers can load the
        folder without ``import tempflex`` (with ``trust_remote_code=True``; see ``tempflex.auto_code``)."""
        self.auto_map = dict(AUTO_MAP)
        super().save_pretrained(save_directory, *args, **kwargs)
        write_shim(save_directory)

    @property
    def patch_size(self) -> int:
        """Pixels per patch side of the vision encoder."""
        return self.vision_config.patch_size

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TempFlexConfig:
        """Build a preset (``"tiny"``, ``"qwen3-4b"``, ``"gemma3-4b"``); ``overrides`` replace top-level fields."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        values = copy.deepcopy(PRESETS[name])  # no change to a built config reaches the shared table
        values.update(overrides)
        return cls(**values)


# transformers' AutoConfig reads ``model_type: "tempflex"`` once this module is imported (exist_ok: re-imports are
# harmless). The model and the processor register themselves the same way in their modules.
AutoConfig.register(TempFlexConfig.model_type, TempFlexConfig, exist_ok=True)
