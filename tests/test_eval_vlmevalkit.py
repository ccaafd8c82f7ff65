"""``TempFlexVLMEval`` called the way VLMEvalKit's runners call a model (read in open-compass/VLMEvalKit, commit
e8e78f0): ``run.py`` builds it once with ``supported_VLM[name]()``; ``vlmeval/inference_video.py: infer_data`` edits
``model.nframe`` / ``model.fps`` before each question and calls ``model.generate(message=dataset.build_prompt(idx,
video_llm=model.VIDEO_LLM), dataset=dataset.dataset_name)``; ``vlmeval/inference_mt.py: chat_mt`` grows a history
and calls ``model.chat``. The frames that reach the model are read from ``video_grid_thw`` and from the painted
frame indices of the sampled frames.

Command: ``OMP_NUM_THREADS=1 python -m pytest -q tests/test_eval_vlmevalkit.py`` -> all pass (tiny preset, CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from PIL import Image

import tempflex.processing
from tempflex.evaluation.vlmevalkit import CHAT_FAILED, TempFlexVLMEval, message_to_content
from video_files import encode_video, frame_index

VIDEOMME_TEMPLATE = (
    "\nThese are the frames of a video. Respond with only the letter (A, B, C, or D) of the correct option.\n"
)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vlmevalkit")
    Image.new("RGB", (64, 48), "red").save(folder / "red.png")
    Image.new("RGB", (48, 64), "blue").save(folder / "blue.png")
    encode_video(folder / "minute.mp4", 60, fps=1)  # 60 s, frame k shown at k s
    encode_video(folder / "hour.mp4", 3600, fps=1)  # 1 hour
    return folder


@pytest.fixture(scope="module")
def model():
    supported_vlm = {"TempFlex": partial(TempFlexVLMEval, model_path="tiny", max_new_tokens=2)}
    return supported_vlm["TempFlex"]()  # run.py / infer_data: no keyword arguments for this name


@dataclass
class Seen:
    """What reached the model: frames per video (``video_grid_thw``), the sampled frames' painted indices, and the
    conversation handed to the processor."""

    frames: list[int] = field(default_factory=list)
    indices: list[list[int]] = field(default_factory=list)
    images: list[int] = field(default_factory=list)
    conversations: list[list[dict]] = field(default_factory=list)


@pytest.fixture
def seen(model, monkeypatch):
    record = Seen()
    load_video, generate = tempflex.processing.load_video, model.model.generate
    apply_chat_template = model.processor.apply_chat_template

    def spy_load_video(*args, **kwargs):
        clip = load_video(*args, **kwargs)
        record.indices.append([frame_index(frame) for frame in clip.frames])
        return clip

    def spy_generate(**kwargs):
        if "video_grid_thw" in kwargs:
            record.frames += [int(t) for t, _, _ in kwargs["video_grid_thw"].tolist()]
        record.images.append(len(kwargs["image_grid_thw"]) if "image_grid_thw" in kwargs else 0)
        return generate(**kwargs)

    def spy_template(conversation, *args, **kwargs):
        batch = conversation if conversation and isinstance(conversation[0], list) else [conversation]
        record.conversations.extend(batch)  # generation renders a batch of conversations
        return apply_chat_template(conversation, *args, **kwargs)

    monkeypatch.setattr(tempflex.processing, "load_video", spy_load_video)
    monkeypatch.setattr(model.model, "generate", spy_generate)
    monkeypatch.setattr(model.processor, "apply_chat_template", spy_template)
    return record


@dataclass
class VideoDataset:
    """A video dataset as the runner sees it (``VideoBaseDataset``: ``nframe`` default 0, ``fps`` default -1);
    ``build_prompt`` gives Video-MME's message layout."""

    dataset_name: str
    videos: list[Path]
    nframe: int = 0
    fps: float = -1
    MODALITY = "VIDEO"
    video_llm_seen: list[bool] = field(default_factory=list)

    def __post_init__(self):
        if self.fps > 0 and self.nframe > 0:
            raise ValueError("fps and nframe should not be set at the same time")

    def build_prompt(self, line: int, video_llm: bool) -> list[dict]:
        self.video_llm_seen.append(video_llm)
        assert video_llm, "without VIDEO_LLM the dataset would send its own frames as images"
        return [
            {"type": "text", "value": ""},  # VideoMME.SYS
            {"type": "video", "value": str(self.videos[line])},
            {"type": "text", "value": VIDEOMME_TEMPLATE},
            {"type": "text", "value": "Question: What is shown?\nA. a\nB. b\nAnswer: "},
        ]


def runner_sets_frames(model, dataset) -> None:
    """What ``infer_data`` does to the model before each question (the attribute checks it makes)."""
    if getattr(model, "nframe", None) is not None and getattr(model, "nframe", 0) > 0:
        if dataset.nframe > 0:
            if getattr(model, "nframe", 0) != dataset.nframe:
                model.nframe = dataset.nframe
        elif getattr(model, "fps", 0) == 0:
            raise ValueError("fps is not suitable")
        else:
            model.nframe = None
    if getattr(model, "fps", None) is not None and getattr(model, "fps", 0) > 0:
        if dataset.fps > 0:
            if getattr(model, "fps", 0) != dataset.fps:
                model.fps = dataset.fps
        elif getattr(model, "nframe", 0) == 0:
            raise ValueError("nframe is not suitable")
        else:
            model.fps = None


def run_video_dataset(model, dataset) -> list[str]:
    """``infer_data``'s loop for a non-API model."""
    replies = []
    for line in range(len(dataset.videos)):
        runner_sets_frames(model, dataset)
        assert not (hasattr(model, "use_custom_prompt") and model.use_custom_prompt(dataset.dataset_name))
        struct = dataset.build_prompt(line, video_llm=getattr(model, "VIDEO_LLM", False))
        replies.append(model.generate(message=struct, dataset=dataset.dataset_name))
    return replies


def test_frame_count_dataset_gets_exactly_its_frames(model, seen, media):
    dataset = VideoDataset("Video-MME", [media / "minute.mp4", media / "hour.mp4"], nframe=16)  # Video-MME_16frame
    replies = run_video_dataset(model, dataset)
    assert dataset.video_llm_seen == [True, True] and all(isinstance(reply, str) for reply in replies)
    assert seen.frames == [16, 16]
    assert seen.indices[0] == [int((k + 0.5) * 60 / 16) for k in range(16)]  # evenly spread over the minute
    assert seen.indices[1][-1] > 3300  # and over the hour


def test_fps_dataset_samples_at_its_rate(model, seen, media):
    dataset = VideoDataset("Video-MME", [media / "minute.mp4"], fps=0.5)  # Video-MME_0.5fps
    run_video_dataset(model, dataset)
    assert seen.frames == [30]  # the bug: 60 (the dataset's rate ignored, 1 fps)
    assert seen.indices == [list(range(0, 60, 2))]


def test_fps_dataset_on_a_long_video_is_capped(model, seen, media):
    run_video_dataset(model, VideoDataset("Video-MME", [media / "hour.mp4"], fps=1.0))  # Video-MME_1fps
    assert seen.frames == [128]  # the bug: 3600, no cap
    assert seen.indices[0][0] == 0 and seen.indices[0][-1] == 3599


def test_max_frames_is_the_cap(media, seen, model, monkeypatch):
    monkeypatch.setattr(model, "max_frames", 32)
    run_video_dataset(model, VideoDataset("Video-MME", [media / "hour.mp4"], fps=0.5))
    assert seen.frames == [32]


def test_dataset_without_frame_setting_gets_the_papers_128(model, seen, media):
    run_video_dataset(model, VideoDataset("Video-MME", [media / "minute.mp4"]))  # --data Video-MME
    assert seen.frames == [128]  # the bug: 60
    assert seen.indices[0][0] == 0 and seen.indices[0][-1] == 59


def test_one_model_through_several_datasets(model, seen, media):
    """run.py reuses the model for every --data: each dataset's setting must still reach it."""
    minute = [media / "minute.mp4"] * 2
    for nframe, fps in [(8, -1), (0, 0.5), (0, -1), (8, -1), (0, 1.0), (128, -1), (0, 0.5)]:
        run_video_dataset(model, VideoDataset("Video-MME", minute, nframe=nframe, fps=fps))
    assert seen.frames == [8, 8, 30, 30, 128, 128, 8, 8, 60, 60, 128, 128, 30, 30]


def test_a_fresh_model_hears_the_first_datasets_rate(media):
    """The runner passes a dataset's fps on only when the model's own fps is above 0 (the bug: -1)."""
    model = partial(TempFlexVLMEval, model_path="tiny", max_new_tokens=2)()
    assert model.nframe == 128 and model.fps > 0
    dataset = VideoDataset("Video-MME", [media / "minute.mp4"], fps=0.5)
    runner_sets_frames(model, dataset)
    assert (model.nframe, model.fps) == (None, 0.5)
    assert model.video_options() == {"fps": 0.5, "max_frames": 128}


def test_a_model_with_its_own_fps_on_a_frame_count_dataset(media):
    """The reported TypeError: ``fps=2.0`` on a frame-count dataset (the runner sets ``fps`` to None)."""
    model = partial(TempFlexVLMEval, model_path="tiny", fps=2.0, max_new_tokens=2)()
    dataset = VideoDataset("Video-MME", [media / "minute.mp4"], nframe=8)
    runner_sets_frames(model, dataset)
    assert (model.nframe, model.fps) == (8, None)
    assert model.video_options() == {"nframes": 8, "max_frames": 8}
    assert isinstance(model.generate(message=dataset.build_prompt(0, video_llm=True), dataset="Video-MME"), str)
    assert (model.nframe, model.fps) == (8, 2.0)  # the switched-off rate is back, for the next dataset


@pytest.mark.parametrize("nframe", [None, 0, -1, 8, 8.0, 0.5, float("nan"), "8"])
@pytest.mark.parametrize("fps", [None, 0, -1, 0.5, 2.0, float("inf")])
def test_any_runner_setting_gives_capped_options(model, monkeypatch, nframe, fps):
    monkeypatch.setattr(model, "nframe", nframe)
    monkeypatch.setattr(model, "fps", fps)
    options = model.video_options()
    assert 1 <= options["max_frames"] <= 128
    is_count = nframe in (8, 8.0)  # not 0.5, nan or a string
    if fps in (0.5, 2.0) and not is_count:
        assert options == {"fps": fps, "max_frames": 128}
    else:
        assert options == ({"nframes": 8, "max_frames": 8} if is_count else {"nframes": 128, "max_frames": 128})


def test_settings_the_runner_cannot_use_are_refused():
    with pytest.raises(ValueError, match="fps=-1 must be above 0"):
        TempFlexVLMEval(model_path="tiny", fps=-1)
    with pytest.raises(ValueError, match="nframe=0"):
        TempFlexVLMEval(model_path="tiny", nframe=0)


def test_runner_attributes(model):
    assert model.VIDEO_LLM and model.INTERLEAVE and not model.is_api
    assert not model.use_custom_prompt("Video-MME") and not model.use_custom_prompt("MMDU")
    model.set_dump_image(print)  # inference.py / inference_mt.py: model.set_dump_image(dataset.dump_image)
    assert model.dump_image_func is print
    assert callable(model.chat_inner)  # inference_mt.py asserts hasattr(model, 'chat_inner'); was AttributeError


def test_message_forms(media):
    image = str(media / "red.png")
    assert message_to_content([image, "missing.png", "What colour?"]) == [
        {"type": "image", "image": image},
        {"type": "text", "text": "missing.png"},  # not a file: text, as vlmeval.smp.parse_file says
        {"type": "text", "text": "What colour?"},
    ]
    video = str(media / "minute.mp4")
    assert message_to_content({"type": "video", "value": video}, fps=0.5, max_frames=64) == [
        {"type": "video", "video": video, "fps": 0.5, "max_frames": 64}
    ]
    assert message_to_content([{"type": "video", "value": video, "nframes": 8}], nframe=None, fps=None) == [
        {"type": "video", "video": video, "nframes": 8, "max_frames": 8}  # a part's own count (EgoExoBench)
    ]
    with pytest.raises(ValueError, match="'audio'"):
        message_to_content([{"type": "audio", "value": "a.wav"}])


def test_system_role_part_becomes_the_system_turn(model, seen, media):
    message = [  # MVBench.build_prompt's layout
        {"type": "text", "value": "Carefully watch the video.", "role": "system"},
        {"type": "video", "value": str(media / "minute.mp4")},
        {"type": "text", "value": "Which way does it move?"},
    ]
    model.generate(message, dataset="MVBench")
    (conversation,) = seen.conversations
    assert [turn["role"] for turn in conversation] == ["system", "user"]
    assert conversation[0]["content"] == [{"type": "text", "text": "Carefully watch the video."}]
    assert [part["type"] for part in conversation[1]["content"]] == ["video", "text"]


def test_chat_inner_two_user_turns_and_one_assistant_turn(model, seen, media):
    history = [
        {
            "role": "user",
            "content": [{"type": "image", "value": str(media / "red.png")}, {"type": "text", "value": "Colour?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "value": "Red."}]},
        {
            "role": "user",
            "content": [{"type": "image", "value": str(media / "blue.png")}, {"type": "text", "value": "And now?"}],
        },
    ]
    reply = model.chat_inner(history, dataset="MMDU")
    assert isinstance(reply, str)
    (conversation,) = seen.conversations
    assert conversation == [
        {
            "role": "user",
            "content": [{"type": "image", "image": str(media / "red.png")}, {"type": "text", "text": "Colour?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Red."}]},
        {
            "role": "user",
            "content": [{"type": "image", "image": str(media / "blue.png")}, {"type": "text", "text": "And now?"}],
        },
    ]
    assert seen.images == [2]  # both turns' images reach the model
    prompt = model.processor.decode(
        model.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)[0]
    )
    assert prompt.index("Colour?") < prompt.index("Red.") < prompt.index("And now?")
    with pytest.raises(ValueError, match="end with a user turn"):
        model.chat_inner(history[:2], dataset="MMDU")


def test_chat_as_the_multi_turn_runner_calls_it(model, seen, media):
    """``inference_mt.py: chat_mt`` on an ``ImageMTDataset.build_prompt`` dialogue (user/assistant pairs)."""
    dialogue = [
        {
            "role": "user",
            "content": [{"type": "image", "value": str(media / "red.png")}, {"type": "text", "value": "What is it?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "value": "a red square"}]},
        {"role": "user", "content": [{"type": "text", "value": "Is it blue?"}]},
        {"role": "assistant", "content": [{"type": "text", "value": "no"}]},
    ]
    history, predictions = [], []
    for turn in range(len(dialogue) // 2):
        history.append(dialogue[2 * turn])
        reply = model.chat(history, dataset="MMDU")
        history.append({"role": "assistant", "content": reply})  # a plain string, as chat_mt appends it
        predictions.append(reply)
    assert len(predictions) == 2 and all(isinstance(p, str) and p != CHAT_FAILED for p in predictions)
    assert [[turn["role"] for turn in c] for c in seen.conversations] == [["user"], ["user", "assistant", "user"]]
    assert seen.conversations[1][1]["content"] == ([{"type": "text", "text": predictions[0]}] if predictions[0] else [])


def test_chat_drops_the_oldest_turns_after_an_error(model, seen, media):
    history = [
        {"role": "user", "content": [{"type": "audio", "value": "a.wav"}]},  # fails: TempFlex takes no audio
        {"role": "assistant", "content": "?"},
        {"role": "user", "content": "Hello"},
    ]
    assert isinstance(model.chat(history, dataset="MMDU"), str)
    assert [[turn["role"] for turn in c] for c in seen.conversations] == [["user"]]
    assert model.chat([{"role": "user", "content": [{"type": "audio", "value": "a.wav"}]}]) == CHAT_FAILED
