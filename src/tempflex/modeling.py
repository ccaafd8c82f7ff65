"""``TempFlexForConditionalGeneration``: SigLIP2-naflex -> TFF -> (temporal pooling) -> 2x2 merger -> causal LM.

Inputs follow Qwen2.5-VL's conventions: ``pixel_values`` ``[sum F*h*w, p*p*C]`` with ``image_grid_thw``
``[n_images, 3]`` (``(1, h, w)`` in patches) for images, ``pixel_values_videos`` with ``video_grid_thw`` for
videos, and ``input_ids`` holding exactly as many ``image_token_id`` / ``video_token_id`` placeholders as the
visual features have tokens (``token_budget`` computes both; a mismatch raises ``ValueError``).

Per clip (one path for images and videos)::

    vision_tower    [F, h*w, D]       SigLIP2 at native resolution, per-frame positional resize
    temporal_fusion [1, F, h*w, D]    TFF (videos when use_temporal_fusion; images too when fuse_images)
    pooling         [F', h*w, D]      average over time to F' = min(F, max_frames_to_llm) frames (videos)
    merger          [F'*h/2*w/2, E]   2x2 unshuffle + MLP, scattered into the LM's input embeddings

``generate`` encodes pixels on the first step only (transformers drops ``pixel_values`` and
``pixel_values_videos`` after the prefill when a cache is used). Gradient checkpointing covers the vision
encoder layers, the TFF layers and the LM layers.

Example (tiny preset, random weights)::

    model = TempFlexForConditionalGeneration(TempFlexConfig.from_preset("tiny"))
    out = model(input_ids=ids, pixel_values=patches, image_grid_thw=torch.tensor([[1, 4, 6]]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast

from tempflex.configuration import TempFlexConfig
from tempflex.fusion import TemporalFiberFusion, TemporalFiberFusionLayer
from tempflex.merger import PatchMerger
from tempflex.token_budget import frames_to_llm
from tempflex.vision import VisionTower

__all__ = ["TempFlexForConditionalGeneration", "TempFlexPreTrainedModel"]


class TempFlexPreTrainedModel(PreTrainedModel):
    """Weight initialisation and the transformers class attributes shared by TempFlex models."""

    config: TempFlexConfig
    config_class = TempFlexConfig
    base_model_prefix = ""
    input_modalities = ("image", "video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _no_split_modules = ("Siglip2EncoderLayer", "TemporalFiberFusionLayer")

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, TemporalFiberFusionLayer):
            # children are initialised first: restore TFF's identity-at-init over the generic LayerNorm init
            init.zeros_(module.norm.weight)
            init.zeros_(module.norm.bias)
            init.zeros_(module.context_scale)


class TempFlexForConditionalGeneration(TempFlexPreTrainedModel, GenerationMixin):
    """The TempFlex-VL model: ``vision_tower``, ``temporal_fusion``, ``merger``, ``language_model``."""

    def __init__(
        self,
        config: TempFlexConfig,
        vision_model: PreTrainedModel | None = None,
        language_model: PreTrainedModel | None = None,
    ) -> None:
        """Random towers from ``config``, or the given loaded ``vision_model`` / ``language_model`` (see assembly)."""
        super().__init__(config)
        vision_config, text_config = config.vision_config, config.text_config
        attn = vision_config._attn_implementation or "sdpa"
        if vision_model is not None:
            self.vision_tower = VisionTower.from_model(vision_model, attn_implementation=attn)
        else:
            self.vision_tower = VisionTower(vision_config, attn_implementation=attn)
        self.temporal_fusion = TemporalFiberFusion(
            vision_config.hidden_size,
            num_layers=config.fusion_num_layers,
            kernel_hidden=config.fusion_kernel_hidden,
            ffn_hidden=config.fusion_ffn_hidden,
            frequencies=config.fusion_frequencies,
            paths=config.fusion_paths,
            layer_norm_eps=vision_config.layer_norm_eps,
        )
        self.merger = PatchMerger(
            vision_config.hidden_size, text_config.hidden_size, layer_norm_eps=vision_config.layer_norm_eps
        )
        self.language_model = language_model or AutoModelForCausalLM.from_config(text_config)
        self.post_init()

    # ---- embeddings plumbing (for generate, resize_token_embeddings, PEFT) --------------------------------

    def get_input_embeddings(self) -> nn.Module:
        """The LM's token embedding."""
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        """Replace the LM's token embedding."""
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        """The LM head."""
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        """Replace the LM head."""
        self.language_model.set_output_embeddings(value)

    # ---- visual features --------------------------------------------------------------------------------

    def _encode_clips(self, pixel_values: torch.Tensor, grids: Sequence[Sequence[int]], *, video: bool) -> torch.Tensor:
        """Patches of clips -> LLM-token features of all clips in order, ``[sum tokens, E]``."""
        grids = [tuple(int(v) for v in grid) for grid in grids]
        if not video and any(frames != 1 for frames, _, _ in grids):
            raise ValueError(f"image grids must have one frame, got {grids}")
        pixel_values = pixel_values.to(self.vision_tower.encoder_model.dtype)
        clip_features = self.vision_tower(pixel_values, grids)  # each [F, h*w, D]
        run_fusion = self.config.use_temporal_fusion and (video or self.config.fuse_images)
        # Clips of one shape go through TFF, pooling and the merger together: exact (every op is per clip or
        # per frame) and one call per shape instead of one per clip.
        by_shape: dict[tuple[int, int, int], list[int]] = {}
        for index, grid in enumerate(grids):
            by_shape.setdefault(grid, []).append(index)
        merged: list[torch.Tensor | None] = [None] * len(grids)
        for (_, height, width), indices in by_shape.items():
            features = torch.stack([clip_features[i] for i in indices])  # [n, F, h*w, D]
            if run_fusion:
                features = self.temporal_fusion(features)  # [n, F, h*w, D]
            if video:
                features = self._pool_frames(features)  # [n, F', h*w, D]
            tokens = self.merger(features.flatten(0, 1), height, width)  # [n*F', h/2*w/2, E]
            tokens = tokens.unflatten(0, (len(indices), -1)).flatten(1, 2)  # [n, F'*h/2*w/2, E]
            for i, clip_tokens in zip(indices, tokens, strict=True):
                merged[i] = clip_tokens
        return torch.cat(merged)

    def _zero_visual_term(self) -> torch.Tensor:
        """``0 * (visual path on a blank 32x32 clip)``: a text-only training batch still runs the vision tower, TFF
        and merger, with a loss contribution of exactly 0 and zero gradients.

        Why: with only TFF and the merger trainable (stage 3), a text-only batch would leave the loss without a
        gradient ("element 0 of tensors does not require grad"), and under DDP a process drawing text while another
        draws video would skip the parameters the other one reduces. LLaVA feeds a zero-size image the same way.
        """
        patch = self.config.vision_config.patch_size
        channels = self.config.vision_config.num_channels
        pixels = torch.zeros(4, patch * patch * channels, device=self.device)  # [F*h*w, p*p*C]: 1 frame, 2x2 patches
        return self._encode_clips(pixels, [(1, 2, 2)], video=True).sum() * 0.0

    def _pool_frames(self, features: torch.Tensor) -> torch.Tensor:
        """Average time to at most ``max_frames_to_llm`` frames (adaptive windows: 64 -> 32 averages pairs).

        ``[n, F, h*w, D] -> [n, F', h*w, D]``.
        """
        clips, frames, patches, dim = features.shape
        target = frames_to_llm(frames, self.config.max_frames_to_llm)
        if target == frames:
            return features
        series = features.permute(0, 2, 3, 1).reshape(clips * patches, dim, frames)  # [n*h*w, D, F]
        pooled = F.adaptive_avg_pool1d(series, target)  # [n*h*w, D, F']
        return pooled.reshape(clips, patches, dim, target).permute(0, 3, 1, 2)  # [n, F', h*w, D]

    def get_image_features(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        """Images -> ``[sum tokens, E]`` in the order of ``image_grid_thw``."""
        return self._encode_clips(pixel_values, image_grid_thw.tolist(), video=False)

    def get_video_features(self, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor) -> torch.Tensor:
        """Videos -> ``[sum tokens, E]`` in the order of ``video_grid_thw`` (after TFF and temporal pooling)."""
        return self._encode_clips(pixel_values_videos, video_grid_thw.tolist(), video=True)

    def get_placeholder_mask(
        self, input_ids: torch.Tensor, token_id: int, num_features: int, kind: str
    ) -> torch.Tensor:
        """Boolean mask of the ``token_id`` placeholders; ValueError naming both counts when they differ."""
        mask = input_ids == token_id
        num_placeholders = int(mask.sum())
        if num_placeholders != num_features:
            raise ValueError(
                f"{kind} placeholders and features differ: {num_placeholders} placeholder tokens (id {token_id}) "
                f"in input_ids but {num_features} {kind} feature tokens"
            )
        return mask

    def _merge_visual_features(
        self,
        input_ids: torch.Tensor,
        inputs_embeds: torch.Tensor,
        pixel_values: torch.Tensor | None,
        image_grid_thw: torch.Tensor | None,
        pixel_values_videos: torch.Tensor | None,
        video_grid_thw: torch.Tensor | None,
    ) -> torch.Tensor:
        for pixels, grids, token_id, video in (
            (pixel_values, image_grid_thw, self.config.image_token_id, False),
            (pixel_values_videos, video_grid_thw, self.config.video_token_id, True),
        ):
            if pixels is None:
                continue
            if grids is None:
                raise ValueError(f"{'video_grid_thw' if video else 'image_grid_thw'} is required with its pixels")
            features = self._encode_clips(pixels, grids.tolist(), video=video)
            features = features.to(inputs_embeds.device, inputs_embeds.dtype)  # towers may sit on other devices
            mask = self.get_placeholder_mask(input_ids, token_id, features.shape[0], "video" if video else "image")
            mask = mask.unsqueeze(-1).to(inputs_embeds.device)  # [B, L] -> [B, L, 1]
            inputs_embeds = inputs_embeds.masked_scatter(mask, features)
        return inputs_embeds

    # ---- forward -----------------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: object | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: object,
    ) -> CausalLMOutputWithPast:
        """Logits (and the LM loss over ``labels``, ``-100`` ignored, shifted inside) for text + pixels."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is not None or pixel_values_videos is not None:
            if input_ids is None:
                raise ValueError("pixels need input_ids to locate their placeholder tokens")
            inputs_embeds = self._merge_visual_features(
                input_ids, inputs_embeds, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw
            )
        if self.training and torch.is_grad_enabled() and pixel_values is None and pixel_values_videos is None:
            inputs_embeds = inputs_embeds + self._zero_visual_term().to(inputs_embeds.dtype)
        prefill = cache is None or cache.get_seq_length() == 0
        if input_ids is not None and prefill:  # placeholders without pixels would feed raw token embeddings
            for pixels, token_id, kind in (
                (pixel_values, self.config.image_token_id, "image"),
                (pixel_values_videos, self.config.video_token_id, "video"),
            ):
                if pixels is None and bool((input_ids == token_id).any()):
                    raise ValueError(f"input_ids hold {kind} placeholders (id {token_id}) but no {kind} pixels")
        if (
            use_cache is None
            and cache is None
            and (labels is not None or (position_ids is not None and attention_mask is None))
        ):
            # Training needs no cache, and transformers recognises packed rows (position ids restarting per sample,
            # no attention mask) only when no cache is built: without this, packed samples would attend to each other.
            use_cache = False
        input_only_from = self.config.generation_vocab_size  # rows added for placeholders (see assembly)
        output = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            labels=labels if input_only_from is None else None,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        if input_only_from is not None:
            # Placeholder-only rows never compete: -inf logits keep argmax, sampling and log-softmax (the loss,
            # log-likelihoods) exactly those of the LLM without them. Out of place: a softcap's tanh saves its output.
            logits = output.logits
            added = torch.arange(logits.shape[-1], device=logits.device) >= input_only_from  # [V]
            output.logits = logits.masked_fill(added, float("-inf"))
            if labels is not None:
                output.loss = self.language_model.loss_function(output.logits, labels, logits.shape[-1], **kwargs)
        return output


# AutoModel / AutoModelForImageTextToText load a saved TempFlex folder once this module is imported.
AutoModel.register(TempFlexConfig, TempFlexForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(TempFlexConfig, TempFlexForConditionalGeneration, exist_ok=True)
