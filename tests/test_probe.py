"""The probe's clips: deterministic, answerable only across time (a per-frame oracle stays at chance),
and, decoded by hand-written temporal rules, their answers flip or hold under reversal as they should."""

from collections import Counter

import numpy as np
import pytest

from tempflex.probe import TASKS, TEMPORAL_TASKS, make_sample
from tempflex.probe.tasks import COLOURS, LETTERS


def colour_mask(frames: np.ndarray, colour: str) -> np.ndarray:
    """[F, H, W] bool: pixels of exactly the painted colour (the background noise is grey)."""
    return np.all(frames == np.array(COLOURS[colour], np.uint8), axis=-1)


def circular_step(mask: np.ndarray, axis: int) -> float:
    """Mean displacement per frame of a wrapping object along an axis (via the circular mean position)."""
    size = mask.shape[axis + 1]
    angles = []
    for frame in mask:
        coords = np.nonzero(frame)[axis]
        angles.append(np.angle(np.exp(2j * np.pi * coords / size).mean()))
    steps = np.angle(np.exp(1j * np.diff(angles))) * size / (2 * np.pi)
    return float(np.mean(steps))


def decode(task: str, frames: np.ndarray) -> str:
    """The answer text, read off the clip by a rule that needs time (not from the generator)."""
    if task == "motion_direction":
        red = colour_mask(frames, "red")
        horizontal, vertical = circular_step(red, 1), circular_step(red, 0)
        if abs(horizontal) > abs(vertical):
            return "right" if horizontal > 0 else "left"
        return "down" if vertical > 0 else "up"
    if task == "playback_direction":
        filled = colour_mask(frames, "blue").sum(axis=(1, 2))
        return "forward" if filled[-1] > filled[0] else "backward"
    if task == "blink_count":
        lit = colour_mask(frames, "yellow").any(axis=(1, 2)).astype(int)
        return str(int(np.sum(np.diff(np.concatenate([[0], lit])) == 1)))
    if task == "blink_frequency":
        lit = colour_mask(frames, "green").any(axis=(1, 2)).astype(int)
        return "fast" if np.sum(np.abs(np.diff(lit))) > 6 else "slow"
    if task == "colour_order":
        first = next(c for c in COLOURS if colour_mask(frames[:1], c).any())
        last = next(c for c in COLOURS if colour_mask(frames[-1:], c).any())
        return f"{first} then {last}"
    if task == "speed_change":
        red = colour_mask(frames, "red")
        size = red.shape[2]
        angles = [np.angle(np.exp(2j * np.pi * np.nonzero(f)[1] / size).mean()) for f in red]
        steps = np.angle(np.exp(1j * np.diff(angles))) * size / (2 * np.pi)
        speeds = np.abs(steps)  # reversed, the square moves the other way: compare speeds, not velocities
        return "speeds up" if speeds[-3:].mean() > speeds[:3].mean() else "slows down"
    if task == "appear_disappear":
        blue = colour_mask(frames, "blue").any(axis=(1, 2))
        return "appears" if blue[-1] and not blue[0] else "disappears"
    if task == "static_colour":
        return next(c for c in COLOURS if colour_mask(frames[:1], c).any())
    raise AssertionError(task)


FLIPPED = {
    "motion_direction": {"left": "right", "right": "left", "up": "down", "down": "up"},
    "playback_direction": {"forward": "backward", "backward": "forward"},
    "speed_change": {"speeds up": "slows down", "slows down": "speeds up"},
    "appear_disappear": {"appears": "disappears", "disappears": "appears"},
}


@pytest.mark.parametrize("task", list(TASKS))
def test_any_run_of_consecutive_seeds_is_balanced_over_the_answers(task):
    """A held-out split (consecutive seeds) gives an answer-blind model exactly chance, within one sample."""
    options = len(make_sample(task, 0).options)
    for start, count in ((0, 12), (128, 160), (5, 37)):
        counts = Counter(make_sample(task, seed).answer for seed in range(start, start + count))
        assert len(counts) == options and max(counts.values()) - min(counts.values()) <= 1, (task, counts)


@pytest.mark.parametrize("task", list(TASKS))
def test_generator_is_deterministic_per_seed(task):
    a, b, c = make_sample(task, 7), make_sample(task, 7), make_sample(task, 8)
    assert np.array_equal(a.frames, b.frames) and a.answer == b.answer and a.question == b.question
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize("task", list(TASKS))
def test_answers_decode_from_time_and_flip_or_hold_under_reversal(task):
    for seed in range(40):
        sample = make_sample(task, seed)
        assert decode(task, sample.frames) == sample.answer_text, (task, seed)
        reversed_answer = decode(task, sample.frames[::-1])
        if task in FLIPPED:
            assert reversed_answer == FLIPPED[task][sample.answer_text], (task, seed)
        elif task == "colour_order":
            first, _, second = sample.answer_text.partition(" then ")
            assert reversed_answer == f"{second} then {first}"
        else:  # counts, frequencies and the static colour do not depend on the direction of time
            assert reversed_answer == sample.answer_text, (task, seed)


def frame_features(frames: np.ndarray) -> np.ndarray:
    """[F, 192]: each frame average-pooled to 8x8 RGB (what a single-frame model could see, coarsely)."""
    count, size = frames.shape[:2]
    pooled = frames.reshape(count, 8, size // 8, 8, size // 8, 3).mean(axis=(2, 4))  # [F, 8, 8, 3]
    return pooled.reshape(count, -1) / 255.0  # [F, 192]


def best_single_frame_accuracy(task: str, train: int = 600, test: int = 300) -> tuple[float, float]:
    """A ridge classifier that sees one frame of a clip, not knowing which: trained on every frame of the
    training clips, tested on every frame of the test clips. Returns its accuracy and chance.

    (Knowing the frame's index would tell appearing from disappearing from the first frame alone; a model that
    reads frames one at a time does not know when each was taken, which is what "from a single frame" means.)
    """
    samples = [make_sample(task, seed) for seed in range(train + test)]
    options = len(samples[0].options)
    features = np.stack([frame_features(s.frames) for s in samples])  # [N, F, 192]
    frames = features.shape[1]
    labels = np.repeat([LETTERS.index(s.answer) for s in samples], frames)  # [N*F]
    x = features.reshape(-1, features.shape[-1])  # [N*F, 192]
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    split = train * frames
    targets = np.eye(options)[labels[:split]]
    weights = np.linalg.solve(x[:split].T @ x[:split] + 1e-1 * np.eye(x.shape[1]), x[:split].T @ targets)
    accuracy = float(np.mean((x[split:] @ weights).argmax(axis=1) == labels[split:]))
    return accuracy, 1.0 / options


@pytest.mark.parametrize("task", TEMPORAL_TASKS)
def test_no_single_frame_gives_a_temporal_answer(task):
    best, chance = best_single_frame_accuracy(task)
    assert best < chance + 0.06, (task, best, chance)


def test_the_single_frame_oracle_solves_the_static_control():
    best, chance = best_single_frame_accuracy("static_colour")
    assert best > 0.95 > chance


def test_generate_writes_a_fixed_split_that_the_training_data_reader_loads(tmp_path, capsys):
    from tempflex.cli import main
    from tempflex.media import load_video
    from tempflex.train.data import load_annotations, to_messages

    assert main(["probe", "generate", "--out", str(tmp_path), "--per-task", "4"]) == 0
    assert "24 train and 8 test clips" in capsys.readouterr().out
    train, test = load_annotations(tmp_path / "train.jsonl"), load_annotations(tmp_path / "test.jsonl")
    assert {r["id"] for r in test} == {f"{task}_3" for task in TASKS}
    record = next(r for r in train if r["task"] == "static_colour")
    messages = to_messages(record, tmp_path)
    assert messages[0]["content"][0]["type"] == "video" and messages[1]["content"][0]["text"] == record["answer"]
    clip = load_video(tmp_path / record["video"], fps=8.0)
    original = make_sample("static_colour", int(record["id"].rsplit("_", 1)[1]))
    assert clip.frames.shape == original.frames.shape
    assert np.abs(clip.frames.astype(int) - original.frames.astype(int)).mean() < 2  # near-lossless
    assert decode("static_colour", original.frames) == original.answer_text


def test_evaluate_scores_the_highest_option_letter_in_padded_batches(tmp_path):
    import torch

    from tempflex import TempFlexConfig, TempFlexForConditionalGeneration, TempFlexProcessor
    from tempflex.evaluation.option_logits import predict_letters
    from tempflex.probe.dataset import generate_probe
    from tempflex.probe.evaluate import evaluate
    from tempflex.tokenization import build_tiny_tokenizer
    from tempflex.train.data import load_annotations, to_messages

    generate_probe(tmp_path, per_task=4, tasks=("blink_count", "static_colour"))
    records = load_annotations(tmp_path / "test.jsonl") + load_annotations(tmp_path / "train.jsonl")
    config = TempFlexConfig.from_preset("tiny")
    processor = TempFlexProcessor.for_model(config, build_tiny_tokenizer())
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(config).eval()
    expected = []  # one record at a time, no padding: the argmax over the option letters' logits
    for record in records:
        inputs = processor.apply_chat_template(
            to_messages(record, tmp_path)[:1], add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt",
        )  # fmt: skip
        assert inputs["video_grid_thw"].tolist() == [[16, 4, 4]]  # every frame (the record's fps), not 1 fps
        with torch.no_grad():
            last = model(**inputs).logits[0, -1]
        letters = [
            processor.tokenizer.encode(c, add_special_tokens=False)[0] for c in "ABCDEF"[: len(record["options"])]
        ]
        expected.append("ABCDEF"[int(last[letters].argmax())])
    cache: dict = {}
    # batches of 3 mix prompts of different lengths (the tasks' questions differ), so rows are padded
    assert predict_letters(model, processor, records, tmp_path, batch_size=3, cache=cache) == expected
    assert len(cache) == 8 and predict_letters(model, processor, records, tmp_path, cache=cache) == expected
    scores = evaluate(model, processor, records, tmp_path, batch_size=3)
    assert scores["all"]["count"] == 8 and set(scores) == {"all", "blink_count", "static_colour"}
    hits = [letter == record["answer"] for letter, record in zip(expected, records, strict=True)]
    assert scores["all"]["accuracy"] == sum(hits) / 8
    assert (
        scores["static_colour"]["accuracy"]
        == sum(hits[i] for i, r in enumerate(records) if r["task"] == "static_colour") / 4
    )


def test_several_models_read_each_clip_once_and_score_as_alone(tmp_path):
    import torch

    from tempflex import TempFlexConfig, TempFlexForConditionalGeneration, TempFlexProcessor
    from tempflex.evaluation.option_logits import predict_letters, predict_letters_many
    from tempflex.probe.dataset import generate_probe
    from tempflex.tokenization import build_tiny_tokenizer
    from tempflex.train.data import load_annotations

    generate_probe(tmp_path, per_task=4, tasks=("blink_frequency", "static_colour"))
    records = load_annotations(tmp_path / "train.jsonl")
    config = TempFlexConfig.from_preset("tiny")
    processor = TempFlexProcessor.for_model(config, build_tiny_tokenizer())
    models = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        models[seed] = TempFlexForConditionalGeneration(config).eval()
    alone = {seed: predict_letters(model, processor, records, tmp_path, batch_size=4) for seed, model in models.items()}
    assert alone[0] != alone[1]  # two different models, so sharing a batch could show
    cache: dict = {}
    assert predict_letters_many(models, processor, records, tmp_path, batch_size=4, cache=cache) == alone
    assert len(cache) == len(records)  # each record processed once for both models
    # models that share a frozen tower (the demo's variants of one seed) may share its frame features
    twin = TempFlexForConditionalGeneration(config).eval()
    twin.load_state_dict(models[0].state_dict())
    store: dict = {}
    for model in (models[0], twin):
        model.vision_tower.requires_grad_(False)
        model.vision_tower.cache_features(store)
    shared = predict_letters_many({"a": models[0], "b": twin}, processor, records, tmp_path, batch_size=4)
    assert shared == {"a": alone[0], "b": alone[0]} and len(store) == 16 * len(records)


@pytest.mark.parametrize(("task", "colour"), [("blink_count", "yellow"), ("blink_frequency", "green")])
def test_flash_tasks_light_the_same_pixels_in_total_whatever_the_answer(task, colour):
    """The clip's mean frame (what pooling all frames at once keeps) is the same for every answer."""
    totals = {}
    for seed in range(60):
        sample = make_sample(task, seed)
        totals.setdefault(sample.answer, set()).add(int(colour_mask(sample.frames, colour).sum()))
    assert len(totals) == len(make_sample(task, 0).options)  # every answer drawn
    assert len(set.union(*totals.values())) == 1, totals
