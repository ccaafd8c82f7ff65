"""A VLMEvalKit model class for TempFlex checkpoints, so ``run.py`` of VLMEvalKit can evaluate them.

VLMEvalKit is not on PyPI: clone it, ``pip install -e .``, and register the model at the end of its
``vlmeval/config.py``::

    from tempflex.evaluation.vlmevalkit import TempFlexVLMEval
    supported_VLM["TempFlex"] = partial(TempFlexVLMEval, model_path="runs/stage4")

Command: ``python run.py --data Video-MME_64frame Video-MME_0.5fps Video-MME MMDU --model TempFlex``. Expected
result: one greedy reply per question, from exactly 64 frames (``Video-MME_64frame``), from one frame every 2 s
but at most ``max_frames`` = 128 (``Video-MME_0.5fps``), from the paper's 128 evenly spread frames
(``Video-MME``, which sets neither), and multi-turn answers for ``MMDU``.

The contract, as read in VLMEvalKit's source (github.com/open-compass/VLMEvalKit, commit e8e78f0):

- ``run.py`` builds the model once (``supported_VLM[name]()``, no arguments; ``infer_data`` adds ``use_vllm`` for
  names holding ``Qwen2-VL``, ``Qwen2.5-VL``, ``Qwen2.5-Omni`` or ``Llama-4``: keep those out of the registered
  name) and reuses it for every ``--data``.
  A dataset with ``MODALITY == "VIDEO"`` goes to ``vlmeval/inference_video.py: infer_data_job_video`` ->
  ``infer_data``; one with ``TYPE == "MT"`` to ``vlmeval/inference_mt.py: infer_data_job_mt``; the others to
  ``vlmeval/inference.py: infer_data_job``.
- Frame settings (``vlmeval/dataset/video_base.py: VideoBaseDataset.__init__``): ``nframe`` (default 0) or
  ``fps`` (default -1), never both. ``vlmeval/dataset/video_dataset_config.py`` names them: ``Video-MME_64frame``
  is ``nframe=64``, ``Video-MME_0.5fps`` is ``fps=0.5``; the bare ``Video-MME`` (``VideoMME.supported_datasets``,
  built by ``vlmeval/dataset/__init__.py: build_dataset``) sets neither ("use the video file directly").
- Before each question ``inference_video.py: infer_data`` edits the model: if ``model.nframe > 0``, it sets
  ``model.nframe = dataset.nframe`` for a frame-count dataset, else ``None`` (a ``ValueError`` if
  ``model.fps == 0``); then, if ``model.fps > 0``, ``model.fps = dataset.fps`` for an fps dataset, else ``None``
  (a ``ValueError`` if ``model.nframe == 0``). A model whose ``nframe`` (``fps``) is not above 0 never learns
  the dataset's frame count (rate).
- The message is ``dataset.build_prompt(idx, video_llm=model.VIDEO_LLM)``, then
  ``model.generate(message=struct, dataset=dataset.dataset_name)`` (the name without the frame suffix). For a
  ``VIDEO_LLM`` model the video is the file, whatever the frame setting: ``vlmeval/dataset/videomme.py:
  VideoMME.build_prompt`` gives ``[text SYS, {"type": "video", "value": ".../video/<id>.mp4"}, text template,
  text "Question: ...\\nAnswer: "]``; otherwise the dataset samples frames itself (``save_video_frames``) and
  sends image parts. Parts may carry a role (``vlmeval/dataset/mvbench.py``: a ``role="system"`` text).
- ``vlmeval/vlm/base.py: BaseModel``: ``generate(message, dataset)`` turns a string, a dict, a list of strings or
  a list of dicts into ``[{"type", "value"}]`` (``preproc_content``) and calls ``generate_inner``;
  ``chat(messages, dataset)`` does so for each turn's content and calls ``chat_inner(messages, dataset)``,
  dropping the oldest turns (up to the next user turn) after an error; ``use_custom_prompt(dataset)`` (False:
  the dataset's prompt), ``set_dump_image``; attributes ``INTERLEAVE``, ``VIDEO_LLM``, ``allowed_types``,
  ``is_api``.
- Multi-turn (``inference_mt.py: chat_mt``): for each user turn of the dataset, append it to the history and call
  ``model.chat(history, dataset=name)``; the reply goes back as ``{"role": "assistant", "content": reply}``.
  MMDU's turns (``vlmeval/dataset/image_mt.py: ImageMTDataset.build_prompt``) are ``{"role": "user" |
  "assistant", "content": [{"type": "text" | "image", "value": ...}]}``.

What this class does with it: ``nframe`` and ``fps`` start above 0 (128 and 1.0), so the runner hands over
whichever setting the dataset has, and a question reaches ``generate`` with ``(nframe, fps)`` =
``(N, None)``: exactly N frames, evenly spread; ``(None, F)``: F frames a second, at most ``max_frames``
(thinned evenly beyond); ``(None, None)``: ``nframe`` (128) evenly spread frames. Every video part gets a frame
cap. After each question, a setting the runner switched off (None) gets its start value back, so that the next
dataset of the same run still hands its setting over (not when a dataset's last question had no message: the
runner skips ``generate`` when ``build_prompt`` returns None, and the next dataset may then get the 128 frames).
Tested by emulating the runner's calls (``tests/test_eval_vlmevalkit.py``), not against an installed VLMEvalKit.
"""

from __future__ import annotations

import logging
import math
import mimetypes
import numbers
from pathlib import Path
from typing import Any

__all__ = ["CHAT_FAILED", "DEFAULT_FRAMES", "TempFlexVLMEval", "message_to_content"]

DEFAULT_FRAMES = 128
"""The paper's test setting: frames per video, and the cap when sampling at a rate."""

CHAT_FAILED = "Chat Mode: Failed with all possible conversation turns."
"""``chat``'s reply when every shortened history failed (``BaseModel.chat``'s wording)."""

_ROLES = ("system", "user", "assistant")
logger = logging.getLogger(__name__)


def _number(value: Any) -> float | None:
    """A finite real number (numpy's too), else None (None, bool, str, nan, inf...); never raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return float(value)


def _count(value: Any) -> int | None:
    """A frame count >= 1 from whatever the runner set (None, 0, -1, 8.0...), else None."""
    number = _number(value)
    return int(number) if number is not None and number >= 1 else None


def _rate(value: Any) -> float | None:
    """A frame rate > 0 from whatever the runner set, else None."""
    number = _number(value)
    return number if number is not None and number > 0 else None


def _video_options(nframe: Any, fps: Any, max_frames: Any) -> dict[str, Any]:
    """TempFlex video-part options: at ``fps`` (capped) when it is above 0, else exactly ``nframe`` frames."""
    rate = _rate(fps)
    if rate is not None:
        return {"fps": rate, "max_frames": _count(max_frames) or _count(nframe) or DEFAULT_FRAMES}
    frames = _count(nframe) or DEFAULT_FRAMES
    return {"nframes": frames, "max_frames": frames}


def _media_kind(text: str) -> str:
    """``"image"`` / ``"video"`` for an existing file of that type (as ``vlmeval.smp.parse_file``), else text."""
    if text.startswith("data:image/"):
        return "image"
    try:
        if len(text) > 4096 or not Path(text).is_file():
            return "text"
    except (OSError, ValueError):  # not a path (NUL bytes, a name too long for the file system)
        return "text"
    mime = mimetypes.guess_type(text)[0] or ""
    if Path(text).suffix.lower() == ".webp":
        mime = "image/webp"
    kind = mime.split("/")[0]
    return kind if kind in ("image", "video") else "text"


def _as_dicts(message: Any) -> list[dict[str, Any]]:
    """VLMEvalKit's accepted message forms -> ``[{"type", "value", ...}]`` (as ``BaseModel.preproc_content``)."""
    if isinstance(message, (str, dict)):
        message = [message]
    if not isinstance(message, (list, tuple)):
        raise ValueError(f"message {message!r}: expected a string, a dict or a list of them")
    parts = []
    for entry in message:
        if isinstance(entry, dict):
            if "type" not in entry or "value" not in entry:
                raise ValueError(f"message part {entry!r} needs 'type' and 'value'")
            parts.append(entry)
        elif isinstance(entry, str):
            parts.append({"type": _media_kind(entry), "value": entry})
        else:
            raise ValueError(f"message part {entry!r} is neither a string nor a dict")
    return parts


def _convert(parts: list[dict[str, Any]], video: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{"type", "value"}]`` -> TempFlex content parts, each video with the options ``video``."""
    content: list[dict[str, Any]] = []
    for part in parts:
        kind, value = part["type"], part["value"]
        if kind == "text":
            if str(value):
                content.append({"type": "text", "text": str(value)})
        elif kind == "image":
            content.append({"type": "image", "image": value})
        elif kind == "video":
            own = _count(part.get("nframes"))  # a part's own frame count (EgoExoBench's parts carry one)
            options = {"nframes": own, "max_frames": own} if own is not None else video
            content.append({"type": "video", "video": value, **options})
        else:
            raise ValueError(f"message part type {kind!r}: TempFlex takes text, image and video")
    return content


def message_to_content(
    message: Any, *, nframe: int | None = DEFAULT_FRAMES, fps: float | None = None, max_frames: int | None = None
) -> list[dict[str, Any]]:
    """A VLMEvalKit message -> the chat content parts ``TempFlexProcessor`` takes.

    Videos are sampled at ``fps`` when it is above 0 (at most ``max_frames``, default ``nframe``), else to exactly
    ``nframe`` frames (128 when not above 0). Empty texts are dropped.

    >>> message_to_content([{"type": "video", "value": "v.mp4"}, {"type": "text", "value": "What happens?"}])
    [{'type': 'video', 'video': 'v.mp4', 'nframes': 128, 'max_frames': 128}, {'type': 'text', 'text': 'What happens?'}]
    """
    return _convert(_as_dicts(message), _video_options(nframe, fps, max_frames))


class TempFlexVLMEval:
    """VLMEvalKit model: ``TempFlexVLMEval(model_path="runs/stage4").generate(message, dataset)`` -> reply.

    ``nframe``: frames for a video dataset that sets neither a frame count nor a rate (and for direct calls);
    ``fps``: the start rate the runner compares with a dataset's (any value above 0: the dataset's rate wins);
    ``max_frames``: the cap when sampling at a rate. See the module docstring for what the runner sets.
    """

    INTERLEAVE = True
    VIDEO_LLM = True
    allowed_types = ("text", "image", "video")
    is_api = False

    def __init__(
        self,
        model_path: str = "tiny",
        nframe: int = DEFAULT_FRAMES,
        fps: float = 1.0,
        max_frames: int = DEFAULT_FRAMES,
        max_new_tokens: int = 64,
        device: str = "auto",
        dtype: str | None = None,
    ):
        if _count(nframe) is None or _count(max_frames) is None:
            raise ValueError(f"nframe={nframe!r} and max_frames={max_frames!r} must be frame counts >= 1")
        if _rate(fps) is None:
            raise ValueError(
                f"fps={fps!r} must be above 0: VLMEvalKit hands a dataset's fps to a model only when the model's "
                "own fps is above 0 (vlmeval/inference_video.py: infer_data); the dataset's value replaces it"
            )
        from tempflex.loading import load, parse_dtype

        self.model, self.processor = load(model_path, device=device, dtype=parse_dtype(dtype))
        self.model.eval()
        self.default_frames, self.start_fps = int(nframe), float(fps)
        self.nframe: int | None = self.default_frames  # set by VLMEvalKit's video runner before each question
        self.fps: float | None = self.start_fps  # likewise
        self.max_frames, self.max_new_tokens = int(max_frames), max_new_tokens
        self.dump_image_func: Any = None

    def video_options(self) -> dict[str, Any]:
        """The TempFlex video options for the current ``(nframe, fps)``, as the runner left them.

        ``(N, None)`` or both set: ``{"nframes": N, "max_frames": N}``; ``(None, F)``: ``{"fps": F, "max_frames":
        max_frames}``; neither: ``nframes`` = the constructor's ``nframe``.
        """
        frames, rate = _count(self.nframe), _rate(self.fps)
        if rate is not None and frames is None:
            return {"fps": rate, "max_frames": self.max_frames}
        frames = frames or self.default_frames
        return {"nframes": frames, "max_frames": frames}

    def _restore(self) -> None:
        """Give a setting the runner switched off its start value back, so the next dataset can set it again."""
        if _count(self.nframe) is None:
            self.nframe = self.default_frames
        if _rate(self.fps) is None:
            self.fps = self.start_fps

    def use_custom_prompt(self, dataset: str | None) -> bool:
        """The datasets' own prompts are used (as in the paper's VLMEvalKit runs)."""
        return False

    def build_prompt(self, line: Any, dataset: Any = None, video_llm: bool | None = None) -> list[dict[str, Any]]:
        """Not used: ``use_custom_prompt`` is False for every dataset."""
        raise NotImplementedError("TempFlexVLMEval uses the datasets' prompts")

    def set_dump_image(self, dump_image_func: Any) -> None:
        """Kept for VLMEvalKit's image and multi-turn runners, which hand every model their image dumper."""
        self.dump_image_func = dump_image_func

    def generate(self, message: Any, dataset: str | None = None) -> str:
        """VLMEvalKit's entry point: normalise the message, then ``generate_inner``."""
        try:
            return self.generate_inner(_as_dicts(message), dataset)
        finally:
            self._restore()

    def generate_inner(self, message: list[dict[str, Any]], dataset: str | None = None) -> str:
        """The greedy reply to one interleaved message; parts with ``role="system"`` form the system turn."""
        video = self.video_options()
        system = _convert([part for part in message if part.get("role") == "system"], video)
        user = _convert([part for part in message if part.get("role") != "system"], video)
        chat = [{"role": "system", "content": system}] if system else []
        return self._reply([*chat, {"role": "user", "content": user}])

    def chat(self, messages: list[dict[str, Any]], dataset: str | None = None) -> str:
        """VLMEvalKit's multi-turn entry point (``BaseModel.chat``): normalise each turn, then ``chat_inner``;
        after an error, retry without the oldest turns, up to the next user turn."""
        turns = []
        for turn in messages:
            if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
                raise ValueError(f"chat turn {turn!r} needs 'role' and 'content'")
            turns.append({"role": turn["role"], "content": _as_dicts(turn["content"])})
        try:
            while turns:
                try:
                    return self.chat_inner(turns, dataset=dataset)
                except Exception as error:  # as BaseModel.chat: a shorter history may still fit
                    logger.warning(
                        "chat with %d turns failed (%s: %s); dropping the oldest",
                        len(turns),
                        type(error).__name__,
                        error,
                    )
                    turns = turns[1:]
                    while turns and turns[0]["role"] != "user":
                        turns = turns[1:]
            return CHAT_FAILED
        finally:
            self._restore()

    def chat_inner(self, message: list[dict[str, Any]], dataset: str | None = None) -> str:
        """The greedy reply after a chat history ``[{"role": "user" | "assistant" | "system", "content": parts}]``
        (parts in any form ``generate`` takes); the last turn is the user's."""
        video = self.video_options()
        chat = []
        for turn in message:
            role = turn.get("role")
            if role not in _ROLES:
                raise ValueError(f"chat turn role {role!r}: expected one of {_ROLES}")
            content = _convert(_as_dicts(turn.get("content", "")), video)
            if role == "assistant" and any(part["type"] != "text" for part in content):
                raise ValueError("assistant turns hold text only")
            chat.append({"role": role, "content": content})
        if not chat or chat[-1]["role"] != "user":
            raise ValueError("a chat must end with a user turn")
        return self._reply(chat)

    def _reply(self, chat: list[dict[str, Any]]) -> str:
        from tempflex.evaluation.runner import generate_chat_reply

        return generate_chat_reply(self.model, self.processor, chat, max_new_tokens=self.max_new_tokens).strip()
