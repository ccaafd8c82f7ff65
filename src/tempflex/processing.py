"""``TempFlexProcessor``: images and videos -> SigLIP2 patches + exactly counted placeholders + tokens.

Use it as Qwen2.5-VL's processor::

    inputs = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image", "image": "cat.png"}, {"type": "text", "text": "What?"}]}],
        add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
    )
    output = model.generate(**inputs, max_new_tokens=32)

or ``processor(text=..., images=..., videos=...)`` with one placeholder per image / video in the text.

Images (PIL, a path, or an ``[H, W, C]`` uint8 array) are resized with ``token_budget.fit_image`` (bicubic; sides
multiples of 32 px), scaled to [0, 1], normalised with mean = std = 0.5 and cut into 16x16 patches in SigLIP2's
layout (``vision.patchify``). Each image placeholder becomes ``num_image_tokens`` copies. Videos (a file path, a
list of frames, an ``[F, H, W, C]`` array) use ``max_tokens_per_frame`` per frame; their placeholder becomes, for
each window of frames that the model averages into one LLM frame (``token_budget.frame_groups``), the window's start
time as text (``<t=2.0s>``, ``<t=0.25s>``: milliseconds, trailing zeros dropped down to one decimal, so every frame
time of a millisecond time base round-trips; Qwen3-VL writes one decimal, which turns 0.25 s into 0.2 s) followed by
that frame's tokens. Videos go through ``media.load_video``: a file is sampled at the part's ``"fps"`` (default
``default_video_fps``: 1 frame per second, at most ``max_video_frames`` = 64, the authors' sampling) and the decoded
frames' own times are written; given frames are taken as ``1 / fps`` s apart. A video part takes qwen-vl-utils'
options (``VIDEO_OPTIONS``: ``fps``, ``nframes``, ``max_frames``, ``video_start``, ``video_end``, ``max_pixels``)
and ``max_video_tokens``, a total budget met by ``token_budget.fit_video`` (lower resolution first, then fewer
frames).

Training labels: ``apply_chat_template(..., return_assistant_tokens_mask=True)`` also returns ``labels``:
the ids of assistant turns (their text and end-of-turn token), ``-100`` elsewhere, and ``-100`` on any visual
placeholder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from tempflex.chat_templates import CHAT_FORMATS
from tempflex.configuration import TempFlexConfig
from tempflex.media import load_image, load_video
from tempflex.media.sampling import even_subset
from tempflex.token_budget import fit_image, fit_video, frame_groups
from tempflex.vision import patchify

__all__ = ["TempFlexProcessor", "describe_source", "format_timestamp", "placeholder_token_ids"]

_PLACEHOLDER_NAMES = ("image_token", "video_token", "vision_start_token", "vision_end_token")


def format_timestamp(seconds: float) -> str:
    """A frame time as the processor writes it: milliseconds, trailing zeros dropped down to one decimal.

    >>> [format_timestamp(t) for t in (0.0, 0.25, 2.0, 0.125, 1 / 3, 61.5)]
    ['0.0', '0.25', '2.0', '0.125', '0.333', '61.5']
    """
    whole, fraction = f"{seconds:.3f}".split(".")
    return f"{whole}.{fraction.rstrip('0') or '0'}"


def describe_source(source: Any) -> str:
    """A short name of a media input for error messages: the path, or what kind of in-memory input it is.

    >>> describe_source("clips/a.mp4"), describe_source(b"xyz"), describe_source("data:image/png;base64," + "A" * 99)
    ("'clips/a.mp4'", '3 bytes', "'data:image/png;base64,AAAAAAAAAAAAAAAAAA...'")
    """
    if isinstance(source, (str, Path)):
        text = str(source)
        if text.startswith("data:") and len(text) > 60:
            return repr(text[:40] + "...")
        return repr("..." + text[-120:]) if len(text) > 160 else repr(text)  # a path: its end names the file
    if isinstance(source, (bytes, bytearray)):
        return f"{len(source)} bytes"
    if isinstance(source, np.ndarray):
        return f"an array of shape {tuple(source.shape)}"
    if isinstance(source, (list, tuple)):
        return f"a list of {len(source)} frames"
    return f"a {type(source).__name__}"


def _has_token(tokenizer: Any, token: str) -> bool:
    token_id = tokenizer.convert_tokens_to_ids(token)
    return isinstance(token_id, int) and tokenizer.convert_ids_to_tokens(token_id) == token


def placeholder_token_ids(tokenizer: Any, chat_format: str) -> dict[str, int]:
    """``{"image_token_id": ..., ...}`` of a chat format's placeholders, adding those the tokenizer lacks."""
    if chat_format not in CHAT_FORMATS:
        raise ValueError(f"unknown chat_format {chat_format!r}; choose from {sorted(CHAT_FORMATS)}")
    tokens = [CHAT_FORMATS[chat_format][name] for name in _PLACEHOLDER_NAMES]
    missing = [token for token in tokens if not _has_token(tokenizer, token)]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return {
        f"{name}_id": tokenizer.convert_tokens_to_ids(token)
        for name, token in zip(_PLACEHOLDER_NAMES, tokens, strict=True)
    }


def _is_frame(item: Any) -> bool:
    return isinstance(item, Image.Image) or (isinstance(item, np.ndarray) and item.ndim in (2, 3))


def _flatten_images(images: Any) -> list:
    """``apply_chat_template`` nests media per sample; ``__call__`` accepts one item or (nested) lists."""
    if images is None:
        return []
    if isinstance(images, (list, tuple)):
        return [leaf for item in images for leaf in _flatten_images(item)]
    return [images]


def _flatten_videos(videos: Any) -> list:
    """A video is a list of frames, an ``[F, H, W, C]`` array, a path, bytes or a data URI; lists nest per sample."""
    if videos is None:
        return []
    if isinstance(videos, torch.Tensor):
        videos = videos.numpy()
    if isinstance(videos, (str, Path, bytes, bytearray)) or (isinstance(videos, np.ndarray) and videos.ndim == 4):
        return [videos]
    if isinstance(videos, (list, tuple)) and videos and all(_is_frame(frame) for frame in videos):
        return [list(videos)]
    if isinstance(videos, (list, tuple)):
        return [leaf for item in videos for leaf in _flatten_videos(item)]
    raise ValueError(f"unsupported video input of type {type(videos).__name__}: pass a path, bytes, frames or an array")


VIDEO_OPTIONS = ("fps", "nframes", "max_frames", "video_start", "video_end", "max_pixels", "max_video_tokens")
"""Keys a video part may carry, as in qwen-vl-utils (``max_pixels`` caps each frame's pixels)."""


class TempFlexProcessor(ProcessorMixin):
    """Tokenizer + TempFlex's own image/video preprocessing + chat template.

    Settings are saved in ``processor_config.json`` by ``save_pretrained``. Build one for a model with
    ``TempFlexProcessor.for_model(config, tokenizer, chat_format="qwen3" | "gemma3")``.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        chat_template: str | None = None,
        patch_size: int = 16,
        merge_size: int = 2,
        max_image_tokens: int = 2048,
        min_image_tokens: int = 4,
        max_tokens_per_frame: int = 256,
        max_frames_to_llm: int | None = 32,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        default_video_fps: float = 1.0,
        max_video_frames: int | None = 64,
        max_video_tokens: int | None = None,
        image_token: str = "<|image_pad|>",
        video_token: str = "<|video_pad|>",
    ) -> None:
        if tokenizer is None:
            raise ValueError("TempFlexProcessor needs a tokenizer")
        if merge_size != 2:
            raise ValueError(f"merge_size must be 2 (the model's merger is a 2x2 unshuffle), got {merge_size}")
        # every setting under its parameter's name: ProcessorMixin.to_dict saves exactly those
        self.patch_size = patch_size
        self.merge_size = merge_size
        self.max_image_tokens = max_image_tokens
        self.min_image_tokens = min_image_tokens
        self.max_tokens_per_frame = max_tokens_per_frame
        self.max_frames_to_llm = max_frames_to_llm
        self.image_mean = list(image_mean) if image_mean is not None else [0.5, 0.5, 0.5]
        self.image_std = list(image_std) if image_std is not None else [0.5, 0.5, 0.5]
        self.default_video_fps = default_video_fps
        self.max_video_frames = max_video_frames
        self.max_video_tokens = max_video_tokens
        self.image_token = image_token
        self.video_token = video_token
        self.image_token_id = self._token_id(tokenizer, image_token)
        self.video_token_id = self._token_id(tokenizer, video_token)
        super().__init__(tokenizer, chat_template=chat_template)

    @staticmethod
    def _token_id(tokenizer: Any, token: str) -> int:
        if not _has_token(tokenizer, token):
            raise ValueError(f"the tokenizer has no token {token!r}; add it as a special token first")
        return tokenizer.convert_tokens_to_ids(token)

    @classmethod
    def for_model(cls, config: Any, tokenizer: Any, chat_format: str = "qwen3", **settings: Any) -> TempFlexProcessor:
        """A processor whose budgets and placeholder ids agree with a ``TempFlexConfig``.

        Adds the chat format's tokens that the tokenizer lacks (e.g. Gemma3's ``<video_soft_token>``) and checks
        that every placeholder id equals the config's.
        """
        token_ids = placeholder_token_ids(tokenizer, chat_format)
        for name, token_id in token_ids.items():
            if token_id != getattr(config, name):
                raise ValueError(f"{name} is {token_id} in the tokenizer but {getattr(config, name)} in the config")
        fmt = CHAT_FORMATS[chat_format]
        values = {
            "chat_template": fmt["chat_template"],
            "patch_size": config.vision_config.patch_size,
            "max_image_tokens": config.max_image_tokens,
            "min_image_tokens": config.min_image_tokens,
            "max_tokens_per_frame": config.max_tokens_per_frame,
            "max_frames_to_llm": config.max_frames_to_llm,
            "image_token": fmt["image_token"],
            "video_token": fmt["video_token"],
        }
        return cls(tokenizer, **{**values, **settings})

    # ---- pixels ------------------------------------------------------------------------------------------

    def _to_patches(self, frames: np.ndarray, max_tokens: int) -> tuple[torch.Tensor, list[int]]:
        """``[F, H, W, 3]`` uint8 -> normalised patches ``[F*h*w, p*p*3]`` and the grid ``[F, h, w]``."""
        height, width = frames.shape[1:3]
        resized_height, resized_width = fit_image(
            height,
            width,
            max_tokens=max_tokens,
            min_tokens=min(self.min_image_tokens, max_tokens),  # a per-frame budget may be below the image floor
            patch_size=self.patch_size,
            merge_size=self.merge_size,
        )
        if (resized_height, resized_width) != (height, width):
            frames = np.stack(
                [
                    np.asarray(Image.fromarray(frame).resize((resized_width, resized_height), Image.Resampling.BICUBIC))
                    for frame in frames
                ]
            )
        pixels = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float() / 255.0  # [F, 3, H, W], a writable copy
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)  # [1, C, 1, 1]
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)  # [1, C, 1, 1]
        patches = patchify((pixels - mean) / std, self.patch_size)  # [F*h*w, p*p*3]
        return patches, [frames.shape[0], resized_height // self.patch_size, resized_width // self.patch_size]

    def _tokens_per_frame(self, grid: list[int]) -> int:
        return (grid[1] // self.merge_size) * (grid[2] // self.merge_size)

    def _process_image_inputs(self, images: list) -> tuple[dict, list[str]]:
        patches, grids, replacements = [], [], []
        for index, image in enumerate(images):
            try:
                frame = load_image(image)[None]
                image_patches, grid = self._to_patches(frame, self.max_image_tokens)
            except ValueError as error:
                raise type(error)(f"image {index} ({describe_source(image)}): {error}") from error  # stays MediaError
            patches.append(image_patches)
            grids.append(grid)
            replacements.append(self.image_token * self._tokens_per_frame(grid))
        return {"pixel_values": torch.cat(patches), "image_grid_thw": torch.tensor(grids)}, replacements

    def _sample_video(self, video: Any, options: dict) -> tuple[np.ndarray, list[float], int]:
        """Frames ``[F, H, W, 3]``, their times, and the per-frame token budget for one video and its options."""
        unknown = set(options) - set(VIDEO_OPTIONS)
        if unknown:
            raise ValueError(f"unknown video options {sorted(unknown)}; expected some of {VIDEO_OPTIONS}")
        num_frames = options.get("nframes")
        clip = load_video(
            video,
            fps=None if num_frames is not None else float(options.get("fps", self.default_video_fps)),
            num_frames=num_frames,
            max_frames=options.get("max_frames", self.max_video_frames),
            start=options.get("video_start"),
            end=options.get("video_end"),
        )
        budget = self.max_tokens_per_frame
        if "max_pixels" in options:
            budget = min(budget, max(1, int(options["max_pixels"]) // (self.patch_size * self.merge_size) ** 2))
        keep, budget = fit_video(
            len(clip.frames),
            *clip.frames.shape[1:3],
            max_video_tokens=options.get("max_video_tokens", self.max_video_tokens),
            max_tokens_per_frame=budget,
            min_tokens_per_frame=min(budget, 16),
            max_frames_to_llm=self.max_frames_to_llm,
            min_tokens=self.min_image_tokens,
            patch_size=self.patch_size,
            merge_size=self.merge_size,
        )
        picks = even_subset(len(clip.frames), keep)
        return clip.frames[picks], [clip.timestamps[i] for i in picks], budget

    def _process_video_inputs(self, videos: list, options: list[dict]) -> tuple[dict, list[str]]:
        patches, grids, replacements = [], [], []
        for index, (video, video_options) in enumerate(zip(videos, options, strict=True)):
            try:
                frames, timestamps, budget = self._sample_video(video, video_options)
                video_patches, grid = self._to_patches(frames, budget)
            except ValueError as error:
                raise type(error)(f"video {index} ({describe_source(video)}): {error}") from error  # stays MediaError
            patches.append(video_patches)
            grids.append(grid)
            frame_tokens = self.video_token * self._tokens_per_frame(grid)
            replacements.append(
                "".join(
                    f"<t={format_timestamp(timestamps[start])}s>{frame_tokens}"
                    for start, _ in frame_groups(grid[0], self.max_frames_to_llm)
                )
            )
        return {"pixel_values_videos": torch.cat(patches), "video_grid_thw": torch.tensor(grids)}, replacements

    # ---- text + pixels -----------------------------------------------------------------------------------

    def __call__(
        self,
        images: Any = None,
        text: str | list[str] | None = None,
        videos: Any = None,
        audio: Any = None,
        video_options: list[dict] | None = None,
        video_fps: list[float] | float | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Tokenise ``text`` with every image / video placeholder expanded; return ids and pixel tensors.

        ``video_options`` gives one dict per video (keys ``VIDEO_OPTIONS``); ``video_fps`` is a shorthand.
        """
        if audio is not None:
            raise ValueError("TempFlex takes no audio input")
        if text is None:
            raise ValueError("TempFlexProcessor needs text with one placeholder per image and per video")
        text = [text] if isinstance(text, str) else list(text)  # a copy: the expansion edits it in place
        images, videos = _flatten_images(images), _flatten_videos(videos)
        counts = {
            "image": (sum(t.count(self.image_token) for t in text), len(images), self.image_token),
            "video": (sum(t.count(self.video_token) for t in text), len(videos), self.video_token),
        }
        for kind, (placeholders, given, token) in counts.items():
            if placeholders != given:
                raise ValueError(f"the text has {placeholders} {token} placeholders but {given} {kind}s were given")
        options = [dict(o) for o in video_options] if video_options is not None else [{} for _ in videos]
        if video_fps is not None:
            rates = [video_fps] * len(videos) if isinstance(video_fps, (int, float)) else list(video_fps)
            if len(rates) != len(videos):
                raise ValueError(f"got {len(rates)} video_fps values for {len(videos)} videos")
            for option, fps in zip(options, rates, strict=True):
                option.setdefault("fps", fps)
        if len(options) != len(videos):
            raise ValueError(f"got {len(options)} video option sets for {len(videos)} videos")

        merged = self._merge_kwargs(tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        text_kwargs = merged["text_kwargs"]
        return_tensors = text_kwargs.pop("return_tensors", None)
        want_offsets = text_kwargs.pop("return_text_replacement_offsets", merged["return_text_replacement_offsets"])
        text_kwargs.pop("return_mm_token_type_ids", None)

        data, image_replacements, video_replacements = {}, [], []
        if images:
            pixel_data, image_replacements = self._process_image_inputs(images)
            data.update(pixel_data)
        if videos:
            pixel_data, video_replacements = self._process_video_inputs(videos, options)
            data.update(pixel_data)
        text, replacement_offsets = self.get_text_with_replacements(text, image_replacements, video_replacements)
        text_inputs = self.tokenizer(text, **text_kwargs)
        self._check_special_mm_tokens(text, text_inputs, modalities=["image", "video"])
        if want_offsets:
            text_inputs["text_replacement_offsets"] = replacement_offsets
        return BatchFeature(
            {**text_inputs, **data}, tensor_type=return_tensors, skip_tensor_conversion=self.skip_tensor_conversion
        )

    def _multimodal_inputs_from_conversations(
        self, conversations: list, audio_loading_params: dict, load_audio_from_video: bool = False
    ) -> tuple:
        """transformers' collection of media from messages, plus each video part's options (``VIDEO_OPTIONS``)."""
        images, videos, audios, extra = super()._multimodal_inputs_from_conversations(
            conversations, audio_loading_params, load_audio_from_video
        )
        options = [
            {key: value for key, value in part.items() if key not in ("type", "video", "url", "path")}
            for conversation in conversations
            for message in conversation
            if isinstance(message.get("content"), list)
            for part in message["content"]
            if part.get("type") == "video"
        ]
        return images, videos, audios, {**extra, "video_options": options} if options else extra

    def apply_chat_template(self, conversation: Any, *args: Any, **kwargs: Any) -> Any:
        """transformers' ``apply_chat_template``; with ``return_assistant_tokens_mask=True`` also ``labels``."""
        output = super().apply_chat_template(conversation, *args, **kwargs)
        if kwargs.get("return_assistant_tokens_mask") and kwargs.get("tokenize") and kwargs.get("return_dict"):
            placeholders = (self.image_token_id, self.video_token_id)
            ids, masks = output["input_ids"], output["assistant_masks"]
            if isinstance(ids, torch.Tensor):
                supervised = torch.as_tensor(masks).bool() & (ids != placeholders[0]) & (ids != placeholders[1])
                output["labels"] = torch.where(supervised, ids, torch.full_like(ids, -100))
            else:  # lists: rows may differ in length when not padded
                output["labels"] = [
                    [t if m and t not in placeholders else -100 for t, m in zip(row, mask, strict=True)]
                    for row, mask in zip(ids, masks, strict=True)
                ]
        return output

    @property
    def end_of_turn_token(self) -> str:
        """The token that ends a turn in this processor's chat format (``<|im_end|>`` / ``<end_of_turn>``)."""
        for chat_format in CHAT_FORMATS.values():
            if chat_format["image_token"] == self.image_token:
                return chat_format["end_of_turn_token"]
        raise ValueError(f"no chat format uses the image token {self.image_token!r}")

    @property
    def model_input_names(self) -> list[str]:
        """Inputs the model's forward takes from this processor."""
        return [
            *self.tokenizer.model_input_names,
            "pixel_values",
            "image_grid_thw",
            "pixel_values_videos",
            "video_grid_thw",
        ]


# AutoProcessor loads a saved TempFlex folder's processor once this module is imported.
AutoProcessor.register(TempFlexConfig, TempFlexProcessor, exist_ok=True)
