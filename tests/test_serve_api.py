"""The OpenAI-compatible server on 127.0.0.1 with the tiny model, driven by the official ``openai`` client."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import torch

from serving import data_uri, png_bytes, running, write_png
from tempflex.serve.app import create_app
from tempflex.serve.engine import Engine
from tempflex.serve.media_policy import MediaPolicy
from tempflex.token_budget import num_image_tokens, num_video_tokens
from video_files import encode_video

MAX_BODY = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    return Engine.load("tiny")


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    write_png(folder / "inside.png")
    return folder


@pytest.fixture(scope="module")
def server(engine, media_dir):
    policy = MediaPolicy(allowed_dir=media_dir, allow_remote=True, remote_timeout=2.0)
    with running(create_app(engine, policy=policy, max_body_bytes=MAX_BODY, max_tokens_limit=64)) as url:
        yield url


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="none", max_retries=0, timeout=60)


def image_message(url: str, text: str = "What is in the picture?") -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]}
    ]


def test_models_and_health(client, server):
    assert [model.id for model in client.models.list().data] == ["tiny"]
    with urllib.request.urlopen(server + "/health") as response:
        assert json.load(response)["status"] == "ok"


def test_image_completion_usage_agrees_with_token_budget(client, engine):
    processor = engine.processor
    reply = client.chat.completions.create(
        model="tiny", messages=image_message(data_uri(png_bytes(80, 120), "image/png")), max_tokens=5, temperature=0
    )
    expected = num_image_tokens(
        80, 120, max_tokens=processor.max_image_tokens, min_tokens=processor.min_image_tokens, patch_size=16
    )
    usage = reply.usage
    assert usage.visual_tokens == expected == usage.prompt_tokens_details.image_tokens
    assert usage.prompt_tokens > expected
    assert 1 <= usage.completion_tokens <= 5 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert isinstance(reply.choices[0].message.content, str)


def test_streamed_video_answer_equals_the_non_streamed_one(client, engine, tmp_path):
    video = data_uri(encode_video(tmp_path / "clip.mp4", 30, fps=10).read_bytes(), "video/mp4")
    messages = [
        {
            "role": "user",
            "content": [{"type": "video_url", "video_url": {"url": video}}, {"type": "text", "text": "What moves?"}],
        }
    ]
    knobs = {"mm_processor_kwargs": {"num_frames": 8}}
    chunks = list(
        client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=6, temperature=0, stream=True,
            stream_options={"include_usage": True}, extra_body=knobs,
        )
    )  # fmt: skip
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    usage = chunks[-1].usage
    processor = engine.processor
    expected = num_video_tokens(
        8, 64, 128, max_tokens_per_frame=processor.max_tokens_per_frame, max_frames_to_llm=processor.max_frames_to_llm
    )
    assert usage.visual_tokens == expected == usage.prompt_tokens_details.video_tokens
    assert pieces and usage.completion_tokens >= 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    whole = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=6, temperature=0, extra_body=knobs
    )
    assert "".join(pieces) == whole.choices[0].message.content
    assert whole.usage.visual_tokens == expected


def test_fps_knob_changes_the_sampled_frames(client, tmp_path):
    video = data_uri(encode_video(tmp_path / "clip.mp4", 40, fps=10).read_bytes(), "video/mp4")
    messages = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": video}}]}]
    tokens = [
        client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=1, extra_body={"mm_processor_kwargs": {"fps": fps}}
        ).usage.visual_tokens
        for fps in (1, 2)
    ]
    assert tokens[1] == 2 * tokens[0]  # a 4-s clip: 4 frames at 1 fps, 8 at 2 fps


def test_files_only_inside_the_allowed_folder(client, media_dir, tmp_path):
    inside = client.chat.completions.create(
        model="tiny", messages=image_message(str(media_dir / "inside.png")), max_tokens=1
    )
    assert inside.usage.visual_tokens > 0
    assert (
        client.chat.completions.create(
            model="tiny", messages=image_message((media_dir / "inside.png").as_uri()), max_tokens=1
        ).usage.visual_tokens
        == inside.usage.visual_tokens
    )
    outside = write_png(tmp_path / "outside.png")
    for url in (str(outside), outside.as_uri(), str(media_dir / ".." / outside.parent.name / "outside.png")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="tiny", messages=image_message(url), max_tokens=1)
        assert "outside the allowed media folder" in caught.value.body["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "169.254.169.254"])
def test_http_media_to_internal_addresses_is_refused_with_remote_media_on(client, server, host):
    port = server.rsplit(":", 1)[1]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="tiny", messages=image_message(f"http://{host}:{port}/health"), max_tokens=1
        )
    assert "remote media must be public" in caught.value.body["message"]


def test_oversized_body_is_413(client):
    huge = data_uri(b"\0" * (MAX_BODY + 1000), "image/png")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="tiny", messages=image_message(huge), max_tokens=1)
    assert caught.value.status_code == 413
    assert "limit" in caught.value.body["message"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "unsupported part"),
        ({"messages": image_message("data:image/png;base64,AAAA")}, "cannot read"),
        ({"extra_body": {"mm_processor_kwargs": {"frames_per_second": 2}}}, "frames_per_second"),
        ({"temperature": 5}, "temperature"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"messages": image_message("ftp://example.com/x.png")}, "unsupported URL scheme"),
    ],
)
def test_bad_requests_are_400_naming_the_problem(client, change, named):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, **change}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**body)
    assert named in caught.value.body["message"]


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=1)


def test_twenty_concurrent_requests_all_succeed(client):
    def ask(index: int):
        stream = index % 2 == 0
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": f"Count to {index}"}], max_tokens=4, stream=stream
        )
        return (
            "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
            if stream
            else reply.choices[0].message.content
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(ask, range(20)))
    assert len(answers) == 20 and all(isinstance(answer, str) for answer in answers)
