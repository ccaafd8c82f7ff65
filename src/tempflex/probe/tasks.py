"""The temporal probe's tasks: seeded clips whose answer needs time, and one static control.

Each task draws a clip ``[F, H, W, 3]`` uint8 on a noisy grey background and a multiple-choice question.
Temporal tasks are built so that no single frame gives the answer away, and neither does the clip's mean frame
(what a model that pools all frames before reading them sees) beyond the motion axis of ``motion_direction``:

- ``motion_direction``: a square moves left / right / up / down, wrapping around the frame, so its position
  in any frame is uniform whatever the direction; reversing the clip flips the answer;
- ``playback_direction``: a bar fills up (forward) or empties (the same clip reversed);
- ``blink_count``: a square flashes 1-6 times; every count lights the same number of frames in total;
- ``blink_frequency``: fast (period 2) or slow (period 8) flashing, random phase, the same lit frames in total;
- ``colour_order``: a square shows one colour, then another; which came first (reversal flips it);
- ``speed_change``: a wrapping square, heading left or right, speeds up or slows down (reversal flips it);
- ``appear_disappear``: a square appears or disappears halfway (reversal flips it);
- ``static_colour`` (control): the colour of a still square, answerable from any frame.

``make_sample(task, seed)`` is deterministic: the same task and seed give the same pixels and answer. The answer
is the option ``seed mod len(options)`` (everything else is drawn from the seed's generator), so the splits of
``probe.dataset`` are balanced: an answer-blind model scores chance, not chance plus the split's luck.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tempflex.records import LETTERS

__all__ = ["TASKS", "TEMPORAL_TASKS", "ProbeSample", "make_sample"]

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}


@dataclass
class ProbeSample:
    """One clip with its question, options and answer letter."""

    task: str
    frames: np.ndarray  # [F, H, W, 3] uint8
    question: str
    options: list[str]
    answer: str  # the correct option's letter

    @property
    def answer_text(self) -> str:
        """The correct option itself."""
        return self.options[LETTERS.index(self.answer)]

    def prompt(self) -> str:
        """The question with lettered options, as the model reads it."""
        lines = [self.question, *(f"{LETTERS[i]}. {option}" for i, option in enumerate(self.options))]
        return "\n".join([*lines, "Answer with the option's letter."])


def _background(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """Noisy grey frames, new noise in every frame."""
    return rng.integers(120, 136, (frames, size, size, 3), dtype=np.uint8)


def _square(frame: np.ndarray, row: int, col: int, side: int, colour: tuple[int, int, int]) -> None:
    """Paint a square whose top-left corner is (row, col), wrapping around the frame edges."""
    size = frame.shape[0]
    rows = (np.arange(side) + row) % size
    cols = (np.arange(side) + col) % size
    frame[np.ix_(rows, cols)] = colour


def _choice(slot: int, options: list[str]) -> int:
    """The answer of the sample in ``slot`` (its seed): seeds cycle through the options, so any run of
    consecutive seeds holds every answer equally often (+-1), and a model that always gives one answer scores
    chance on a held-out split whatever answer it picked."""
    return slot % len(options)


def motion_direction(rng: np.random.Generator, frames: int, size: int, slot: int) -> ProbeSample:
    options = ["left", "right", "up", "down"]
    answer = _choice(slot, options)
    clip = _background(rng, frames, size)
    side, step = size // 6, max(2, size // 16)
    row, col = rng.integers(size, size=2)
    d_row, d_col = {0: (0, -step), 1: (0, step), 2: (-step, 0), 3: (step, 0)}[answer]
    for f in range(frames):
        _square(clip[f], row + f * d_row, col + f * d_col, side, COLOURS["red"])
    return ProbeSample("motion_direction", clip, "Which way does the red square move?", options, LETTERS[answer])


def playback_direction(rng: np.random.Generator, frames: int, size: int, slot: int) -> ProbeSample:
    options = ["forward", "backward"]
    answer = _choice(slot, options)
    clip = _background(rng, frames, size)
    top, height = size // 3, size // 3
    for f in range(frames):
        filled = round((f + 1) / frames * (size - 8))
        clip[f, top : top + height, 4 : 4 + filled] = COLOURS["blue"]
    if answer == 1:
        clip = clip[::-1].copy()
    question = "A blue bar fills up over time in this clip when played forward. Is the clip played forward or backward?"
    return ProbeSample("playback_direction", clip, question, options, LETTERS[answer])


def blink_count(rng: np.random.Generator, frames: int, size: int, slot: int) -> ProbeSample:
    options = [str(n) for n in range(1, 7)]
    answer = _choice(slot, options)
    count, lit = answer + 1, 6  # every count lights 6 frames in total: how long it is lit says nothing
    lengths = np.full(count, lit // count)
    lengths[: lit % count] += 1
    rng.shuffle(lengths)
    free = frames - lit - (count - 1)  # dark frames besides the one between consecutive flashes
    spare = rng.multinomial(free, np.full(count + 1, 1 / (count + 1)))  # before, between and after flashes
    clip = _background(rng, frames, size)
    side, row, col = size // 4, size // 2 - size // 8, size // 2 - size // 8
    position = int(spare[0])
    for flash in range(count):
        for f in range(position, position + int(lengths[flash])):
            _square(clip[f], row, col, side, COLOURS["yellow"])
        position += int(lengths[flash]) + 1 + int(spare[flash + 1])
    return ProbeSample("blink_count", clip, "How many times does the yellow square flash?", options, LETTERS[answer])


def blink_frequency(rng: np.random.Generator, frames: int, size: int, slot: int) -> ProbeSample:
    options = ["fast", "slow"]
    answer = _choice(slot, options)
    period = 2 if answer == 0 else 8  # on half of each period: 16 frames light 8 either way, at any phase
    phase = int(rng.integers(period))
    clip = _background(rng, frames, size)
    side, row, col = size // 4, size // 2 - size // 8, size // 2 - size // 8
    for f in range(frames):
        if ((f + phase) % period) < period // 2:
            _square(clip[f], row, col, side, COLOURS["green"])
    return ProbeSample("blink_frequency", clip, "Does the green square flash fast or slowly?", options, LETTERS[answer])


def colour_order(rng: np.random.Generator, frames: int, size: int, slot: int) -> ProbeSample:
    first, second = rng.choice(list(COLOURS), size=2, replace=False)
    options = [f"{first} then {second}", f"{second} then {first}"]
    answer = _choice(slot, options)
    start, end = (first, second) if answer == 0 else (second, first)
    clip = _background(rng, frames, size)
    side, row, col = size // 3, size // 3, size // 3
    for f in range(frames):
        _square(clip[f], row, col, side, COLOURS[start if f < frames // 2 else end])
    return ProbeSample("colour_order", clip, "In which order does the square change colour?", options, LETTERS[answer])


def speed_change(rng: np.random.Generator, frames: int, size: int, slot: int) -> ProbeSample:
    options = ["speeds up", "slows down"]
    answer = _choice(slot, options)
    clip = _background(rng, frames, size)
    side, col = size // 6, int(rng.integers(size))
    row = int(rng.integers(size))
    speeds = np.linspace(1, size / 8, frames - 1)
    heading = 1 if rng.integers(2) else -1  # either way: the time-averaged smear then says nothing
    positions = heading * np.concatenate([[0], np.cumsum(speeds if answer == 0 else speeds[::-1])])
    for f in range(frames):
        _square(clip[f], row, col + round(positions[f]), side, COLOURS["red"])
    return ProbeSample("speed_change", clip, "Does the red square speed up or slow down?", options, LETTERS[answer])


def appear_disappear(rng: np.random.Generator, frames: int, size: int, slot: int) -> ProbeSample:
    options = ["appears", "disappears"]
    answer = _choice(slot, options)
    clip = _background(rng, frames, size)
    side = size // 4
    row, col = rng.integers(size - side, size=2)
    for f in range(frames):
        visible = f >= frames // 2 if answer == 0 else f < frames // 2
        if visible:
            _square(clip[f], int(row), int(col), side, COLOURS["blue"])
    return ProbeSample("appear_disappear", clip, "Does the blue square appear or disappear?", options, LETTERS[answer])


def static_colour(rng: np.random.Generator, frames: int, size: int, slot: int) -> ProbeSample:
    options = list(COLOURS)
    answer = _choice(slot, options)
    clip = _background(rng, frames, size)
    side, row, col = size // 3, size // 3, size // 3
    for f in range(frames):
        _square(clip[f], row, col, side, COLOURS[options[answer]])
    return ProbeSample("static_colour", clip, "What colour is the square?", options, LETTERS[answer])


TASKS: dict[str, Callable[[np.random.Generator, int, int, int], ProbeSample]] = {
    "motion_direction": motion_direction,
    "playback_direction": playback_direction,
    "blink_count": blink_count,
    "blink_frequency": blink_frequency,
    "colour_order": colour_order,
    "speed_change": speed_change,
    "appear_disappear": appear_disappear,
    "static_colour": static_colour,
}
TEMPORAL_TASKS = tuple(name for name in TASKS if name != "static_colour")


def make_sample(task: str, seed: int, *, frames: int = 16, size: int = 64) -> ProbeSample:
    """The sample of ``task`` for ``seed``: the same pixels and answer every time."""
    if task not in TASKS:
        raise ValueError(f"unknown probe task {task!r}; choose from {sorted(TASKS)}")
    if frames < 12:
        raise ValueError(f"probe clips need at least 12 frames (6 flashes with gaps), got {frames}")
    rng = np.random.default_rng([seed, list(TASKS).index(task)])
    return TASKS[task](rng, frames, size, seed)
