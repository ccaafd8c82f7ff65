"""The synthesis pipeline's pure parts: the paper's prompt, 3x3 grids, answer validation, hashing, the store."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tempflex.synth.dedup import content_hash, hamming, near_duplicates, perceptual_hash
from tempflex.synth.grids import stitch_grids
from tempflex.synth.prompt import FIGURE6_TEMPLATE, PromptSpec, parse_tasks
from tempflex.synth.schema import InvalidOutputError, count_sentences, validate_output
from tempflex.synth.store import Store

FIGURE7_NAMES = [
    "Temporal Reasoning", "Spatial Awareness", "Causal Reasoning", "Motion Analysis", "Binary Questions",
    "Count and Quantity", "Narrative Understanding", "Object Description", "Sequence Ordering",
    "Fine-grain Action Recognition", "Human Activity and Appearance Description", "Attribute Evolution",
    "Camera Movement Direction", "Object Movement Direction", "Scene Description",
]  # fmt: skip


def test_prompt_carries_figures_6_and_7():
    spec = PromptSpec()
    assert list(spec.dimensions) == FIGURE7_NAMES
    text = spec.system_text()
    for fact in (
        "each containing 9 frames",
        "at a frame rate of 1 fps",
        "tic-tac-toe style(3x3)",
        "the first row from left to right represents 1, 2, 3",
        "frames from 9 to 17 seconds",
        "any white images within the stitched images are meaningless",
        "no more than 20 sentences",
        "Generate 5 vqa-type1 question-answer pairs",
        "Generate 5 vqa-type2 question-answer pairs",
        "total 10 question-answer pairs",
        "most suitable 5 dimensions out of 15 question dimensions",
        "## Answer-1: The car moved from the right to the left when entering the frame.",
        '"vqa_type1"',
    ):
        assert fact in text, fact
    assert not re.search(r"\{[a-z_0-9]+\}", text)  # every placeholder filled


def test_prompt_messages_carry_metadata_and_images():
    messages = PromptSpec().messages(["data:image/jpeg;base64,AAAA"] * 2, {"asr": "hello there", "tags": ["a", "b"]})
    user = messages[1]["content"]
    assert "ASR text: hello there" in user[0]["text"] and "Tags: a, b" in user[0]["text"]
    assert "Activities: (none)" in user[0]["text"]
    assert [part["type"] for part in user] == ["text", "image_url", "image_url"]


def test_prompt_override_and_version():
    default = PromptSpec()
    tasks = "# Colour: which colours. ## Question-1: What colour? ## Answer-1: Red.\n# Count: how many."
    custom = PromptSpec(template="Dims: {task_definitions} ({n_type1}+{n_type2})", tasks=tasks, n_type2=2)
    assert custom.dimensions == ("Colour", "Count")
    assert custom.system_text().endswith("(5+2)")
    assert len({default.version, custom.version, PromptSpec(n_type1=4).version}) == 3
    assert PromptSpec().version == default.version
    with pytest.raises(ValueError, match="task_definitions"):
        PromptSpec(template="no placeholder")
    with pytest.raises(ValueError, match="twice"):
        parse_tasks("# A: x\n# a: y")
    with pytest.raises(ValueError, match="unknown placeholder"):
        PromptSpec(template="{task_definitions} {video_title}").system_text()
    assert "{task_definitions}" in FIGURE6_TEMPLATE


def test_grids_order_padding_and_cell_size():
    frames = np.stack([np.full((20, 40, 3), 10 * i, np.uint8) for i in range(1, 12)])  # 11 frames, values 10..110
    grids = stitch_grids(frames, cell_width=30)
    assert len(grids) == 2 and all(grid.size == (90, 45) for grid in grids)  # 3x3 cells of 30x15
    first = np.asarray(grids[0])
    for slot in range(9):  # left to right, then top to bottom
        row, col = divmod(slot, 3)
        assert first[row * 15 + 7, col * 30 + 15, 0] == 10 * (slot + 1)
    second = np.asarray(grids[1])
    assert second[7, 15, 0] == 100 and second[7, 45, 0] == 110
    assert (second[7, 75] == 255).all() and (second[22:, :] == 255).all()  # white cells pad the last grid
    with pytest.raises(ValueError, match="shape"):
        stitch_grids(np.zeros((0, 4, 4, 3), np.uint8))


def _answer(**change) -> dict:
    pairs = [{"dimension": d, "question": f"Q{i}?", "answer": f"A{i}."} for i, d in enumerate(FIGURE7_NAMES[:10])]
    answer = {"caption": "A cat sits. It jumps.", "vqa_type1": pairs[:5], "vqa_type2": pairs[5:]}
    answer.update(change)
    return answer


def test_validate_accepts_fenced_json_and_normalises_dimensions():
    answer = _answer()
    answer["vqa_type1"][0]["dimension"] = "temporal-reasoning"
    output = validate_output("Here:\n```json\n" + json.dumps(answer) + "\n```", PromptSpec())
    assert output.vqa_type1[0].dimension == "Temporal Reasoning"
    assert output.caption == "A cat sits. It jumps."


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json at all", "not JSON"),
        ("{caption: 1}", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"caption": "x"}), "wrong schema"),
        (json.dumps(_answer(caption="")), "caption"),
        (json.dumps(_answer(caption="One. " * 21)), "21 sentences"),
        (json.dumps(_answer(vqa_type2=_answer()["vqa_type2"][:4])), "vqa_type2 has 4"),
        (json.dumps(_answer(vqa_type1=[{**p, "dimension": "Smell"} for p in _answer()["vqa_type1"]])), "unknown"),
        (json.dumps(_answer(vqa_type1=[{**p, "answer": " "} for p in _answer()["vqa_type1"]])), "empty"),
        (json.dumps(_answer(vqa_type1=[{**p, "dimension": "Scene Description"} for p in _answer()["vqa_type1"]])),
         "twice"),
        (json.dumps(_answer(vqa_type2=[{**p, "question": "q0 ?"} if i == 0 else p for i, p in
                                       enumerate(_answer()["vqa_type2"])])), "repeats the question"),
    ],
)  # fmt: skip
def test_validate_rejects_with_a_reason(text, reason):
    with pytest.raises(InvalidOutputError, match=reason):
        validate_output(text, PromptSpec())


def test_count_sentences():
    assert count_sentences("One. Two! Three? Four") == 4
    assert count_sentences("It is 3.5 m long. Done.") == 2


def test_hashes(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 3_000_000)
    (tmp_path / "b").write_bytes(b"x" * 3_000_000)
    (tmp_path / "c").write_bytes(b"x" * 2_999_999 + b"y")
    assert content_hash(tmp_path / "a") == content_hash(tmp_path / "b") != content_hash(tmp_path / "c")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    noisy = np.clip(frames.astype(int) + rng.integers(-3, 4, frames.shape), 0, 255).astype(np.uint8)
    other = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    base = perceptual_hash(frames)
    assert hamming(base, perceptual_hash(noisy)) < 6 < hamming(base, perceptual_hash(other))
    found = near_duplicates([("a", base), ("b", perceptual_hash(other)), ("c", perceptual_hash(noisy))], 6)
    assert list(found) == ["c"] and found["c"][0] == "a"


def test_store_states_and_idempotent_finish(tmp_path):
    with Store(tmp_path / "s.db") as store:
        assert store.register("v1", "p", "/x/v1.mp4", {"source": "vatex"})
        assert not store.register("v1", "p", "/y/renamed.mp4", {})  # same content: known already
        store.register("v2", "p", "/x/v2.mp4", {})
        store.start_attempt("v1", "p")
        assert store.finish("v1", "p", {"caption": "c"}, model="m", requests=2, prompt_tokens=10,
                            completion_tokens=5, cost=0.1)  # fmt: skip
        assert not store.finish("v1", "p", {"caption": "other"}, model="m", requests=1, prompt_tokens=1,
                                completion_tokens=1, cost=0.0)  # fmt: skip
        store.fail("v1", "p", "late failure", retryable=True)  # cannot undo a done video
        store.fail("v2", "p", "HTTP 400", retryable=False)
        row = store.get("v1", "p")
        assert (row.status, row.result, row.requests, row.attempts, row.source) == (
            "done",
            {"caption": "c"},
            2,
            1,
            "/x/v1.mp4",
        )
        assert store.todo("p", max_attempts=3) == []  # v2 failed for good
    with Store(tmp_path / "s.db") as store:  # reopened: all still there
        assert store.counts("p") == {"done": 1, "failed": 1}
        assert store.get("v2", "p").last_error == "HTTP 400"
