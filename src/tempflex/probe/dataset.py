"""Write the probe to disk: one mp4 per clip (PyAV) and LLaVA-format annotations, train and test splits.

Command::

    tempflex probe generate --out probe --per-task 200     # about 1,600 clips of 16 frames, 64x64

writes ``probe/videos/<task>_<seed>.mp4``, ``probe/train.jsonl`` and ``probe/test.jsonl``. Each record::

    {"id": "blink_count_17", "task": "blink_count", "video": "videos/blink_count_17.mp4", "fps": 8,
     "video_options": {"fps": 8},
     "answer": "C", "options": ["1", "2", "3", "4", "5", "6"],
     "conversations": [{"from": "human", "value": "<video>\\nHow many times ...\\nA. 1\\n...Answer with the
     option's letter."}, {"from": "gpt", "value": "C"}]}

The split is fixed: seeds ``0 .. per_task - 1``; the last ``test_fraction`` of them form the test split, so
the same arguments always give the same files. Clips are encoded near-losslessly (H.264, crf 0 where libx264
exists, else MPEG-4 at the highest quality) so colours survive for the tasks that need them.
"""

from __future__ import annotations

import json
from pathlib import Path

from tempflex.probe.tasks import TASKS, ProbeSample, make_sample

__all__ = ["generate_probe", "write_clip"]


def write_clip(sample: ProbeSample, path: Path, fps: int) -> None:
    """Encode a sample's frames as an mp4 file."""
    import av

    height, width = sample.frames.shape[1:3]
    with av.open(str(path), "w") as container:
        if "libx264" in av.codecs_available:
            stream = container.add_stream("libx264", rate=fps)
            stream.options = {"crf": "0", "preset": "ultrafast"}
            stream.pix_fmt = "yuv444p"
        else:  # pragma: no cover - depends on the FFmpeg build
            stream = container.add_stream("mpeg4", rate=fps)
            stream.pix_fmt = "yuv420p"
            stream.options = {"qscale": "1"}
        stream.width, stream.height = width, height
        for frame in sample.frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def generate_probe(
    out: str | Path,
    *,
    per_task: int = 200,
    test_fraction: float = 0.25,
    tasks: tuple[str, ...] | None = None,
    frames: int = 16,
    size: int = 64,
    fps: int = 8,
) -> dict[str, int]:
    """Write clips and ``train.jsonl`` / ``test.jsonl`` into ``out``; returns the record count per split."""
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    chosen = tasks or tuple(TASKS)
    first_test = per_task - max(1, round(per_task * test_fraction))
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for task in chosen:
        for seed in range(per_task):
            sample = make_sample(task, seed, frames=frames, size=size)
            name = f"{task}_{seed}"
            path = out / "videos" / f"{name}.mp4"
            if not path.exists():
                write_clip(sample, path, fps)
            record = {
                "id": name,
                "task": task,
                "video": f"videos/{name}.mp4",
                "fps": fps,
                "video_options": {"fps": fps},  # every frame: the processor's default of 1 fps would keep 2
                "answer": sample.answer,
                "options": sample.options,
                "conversations": [
                    {"from": "human", "value": "<video>\n" + sample.prompt()},
                    {"from": "gpt", "value": sample.answer},
                ],
            }
            splits["test" if seed >= first_test else "train"].append(record)
    for split, records in splits.items():
        (out / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return {split: len(records) for split, records in splits.items()}
