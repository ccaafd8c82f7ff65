"""``ChatSession``: turn 2 reuses the conversation's KV cache (no re-encoding) and answers as a fresh encode does."""

from __future__ import annotations

import pytest
import torch

from serving import write_png
from tempflex.cli import main
from tempflex.serve.engine import Engine, GenerationParams
from tempflex.serve.session import ChatSession
from video_files import encode_video


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    return Engine.load("tiny")


def count_vision_calls(engine):
    calls = []
    handle = engine.model.vision_tower.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


def test_turn_two_does_not_encode_the_clip_again_and_matches_a_fresh_encode(engine, tmp_path):
    video = str(encode_video(tmp_path / "clip.mp4", 30, fps=10))
    answers = {}
    for use_cache in (True, False):
        session = ChatSession(engine, use_cache=use_cache, nframes=8)
        calls, handle = count_vision_calls(engine)
        try:
            first = session.ask("What happens?", video=video, params=GenerationParams(max_tokens=5, temperature=0))
            assert len(calls) == 1
            turns = [first.token_ids]
            for seed in (1, 2):
                params = GenerationParams(max_tokens=6, temperature=0.9, seed=seed)
                turns.append(session.ask(f"And then ({seed})?", params=params).token_ids)
                assert session.last_turn_cached == use_cache
            assert len(calls) == (1 if use_cache else 3)
        finally:
            handle.remove()
        answers[use_cache] = turns
    assert answers[True] == answers[False]


def test_a_new_image_mid_conversation_is_encoded(engine, tmp_path):
    session = ChatSession(engine)
    session.ask("Hi", params=GenerationParams(max_tokens=2))
    session.ask("And this?", image=str(write_png(tmp_path / "a.png")), params=GenerationParams(max_tokens=2))
    assert not session.last_turn_cached
    session.ask("More?", params=GenerationParams(max_tokens=2))
    assert session.last_turn_cached


def test_stop_strings_cut_the_text(engine):
    prepared = engine.prepare([{"role": "user", "content": "Say something"}])
    free = engine.generate(prepared.inputs, GenerationParams(max_tokens=12, temperature=1.0, seed=5))
    stop = free.text[3:5]
    pieces = []
    cut = engine.generate(
        prepared.inputs, GenerationParams(max_tokens=12, temperature=1.0, seed=5, stop=(stop,)), on_text=pieces.append
    )
    assert cut.text == free.text[: free.text.find(stop)] == "".join(pieces)
    assert cut.finish_reason == "stop"


def test_chat_command_answers_one_question(tmp_path, capsys):
    image = write_png(tmp_path / "cat.png")
    assert main(["chat", "--model", "tiny", "--image", str(image), "--max-tokens", "4", "What is it?"]) == 0
    captured = capsys.readouterr()
    assert "tokens, " in captured.err and ("length" in captured.err or "stop" in captured.err)
