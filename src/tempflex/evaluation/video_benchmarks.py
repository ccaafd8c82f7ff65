"""Readers for the video benchmarks, from files the user downloaded (nothing is fetched here).

Frames: the paper tests with 128 frames per video (Section 4.1: "a maximum of 64 frames is sampled per video
[in training], while 128 frames are used at test time"), so every reader samples ``frames`` (default 128)
frames at the centres of equal slices of the whole video (``nframes``), whatever its length. The probe keeps
its own clips' settings (16 frames at 8 fps) unless ``frames`` is given.

File layouts (``--data`` is the folder; a single annotation file is accepted where noted):

Video-MME (``videomme``, ``videomme-sub``)::

    DATA/videomme/test-00000-of-00001.parquet  # or a .json / .jsonl with the same columns, or the file itself
    DATA/data/<videoID>.mp4                    # "video/" or "videos/" also work
    DATA/subtitle/<videoID>.srt                # videomme-sub only

  columns: video_id, duration (short / medium / long), domain, sub_category, videoID, question_id, task_type,
  question, options (["A. ...", "B. ...", ...]), answer (a letter). Prompt: the Video-MME paper's ("Select
  the best answer ... The best answer is:"); with subtitles, the subtitle lines on screen at the sampled
  frames come first, as in the paper's "w/ subs" setting. Scores by duration, domain and task type.

TempCompass, multi-choice (``tempcompass``)::

    DATA/questions/multi-choice.json   # {video_id: {dimension: [{"question": "...\\nA. ...\\nB. ...",
                                       #                          "answer": "B. ..."}, ...]}}
    DATA/videos/<video_id>.mp4

  Scores by dimension (action, speed, direction, order, attribute_change).

MLVU dev, multiple choice (``mlvu``)::

    DATA/json/1_plotQA.json ... 7_topic_reasoning.json   # lists of {"video", "question", "candidates",
                                                         #           "answer" (the candidate's text),
                                                         #           "question_type", "duration"}
    DATA/video/<same stem>/<video>

  Scores by task and their mean (``macro_task``, MLVU's "M-Avg").

Temporal probe (``probe``): ``tempflex probe generate --out DATA`` writes it; ``DATA/test.jsonl`` (or the
JSONL file itself) with clips relative to its folder. Scores by task.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tempflex.evaluation.answers import LETTERS
from tempflex.evaluation.items import MCQ_SUFFIX, Item, format_options

__all__ = ["PAPER_TEST_FRAMES", "load_mlvu", "load_probe", "load_tempcompass", "load_videomme", "read_srt"]

PAPER_TEST_FRAMES = 128
MLVU_MCQ_TASKS = ("plotQA", "needle", "ego", "count", "order", "anomaly_reco", "topic_reasoning")
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.):]\s*(.*)$")
_SRT_TIME = re.compile(r"(\d+):(\d+):(\d+)[,.](\d+)\s*-->\s*(\d+):(\d+):(\d+)[,.](\d+)")


def _video_part(path: Path, frames: int) -> dict[str, Any]:
    return {"type": "video", "video": str(path), "nframes": frames, "max_frames": frames}


def _read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a parquet, JSON (a list) or JSONL file."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as error:
            raise ImportError(f"reading {path} needs pyarrow: pip install 'tempflex[eval]'") from error
        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {number}: not JSON ({error})") from error
        return rows
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of rows")
    return data


def _find(folder: Path, candidates: list[str], what: str) -> Path:
    for name in candidates:
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"no {what} in {folder}: looked for {', '.join(candidates)}")


def _video_file(root: Path, stem: str, where: str) -> Path:
    for folder in ("data", "video", "videos"):
        for suffix in (".mp4", ".mkv", ".webm", ".avi", ".mov"):
            path = root / folder / f"{stem}{suffix}"
            if path.exists():
                return path
    return root / "data" / f"{stem}.mp4"  # missing: the item fails with MediaError naming this path ({where})


def read_srt(path: Path) -> list[tuple[float, float, str]]:
    """``(start_s, end_s, text)`` for each subtitle of an SRT file.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "a.srt"
    >>> srt = "1\\n00:00:01,000 --> 00:00:02,500\\nHello <i>there</i>\\n\\n"
    >>> _ = f.write_text(srt + "2\\n00:01:00,000 --> 00:01:01,000\\nBye\\n")
    >>> read_srt(f)
    [(1.0, 2.5, 'Hello there'), (60.0, 61.0, 'Bye')]
    """
    subtitles = []
    for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")):
        lines = [line.strip() for line in block.strip().splitlines()]
        for index, line in enumerate(lines):
            match = _SRT_TIME.search(line)
            if match:
                h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in match.groups())
                text = re.sub(r"<[^>]+>", "", " ".join(lines[index + 1 :])).strip()
                if text:
                    subtitles.append(
                        (h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000, text)
                    )
                break
    return subtitles


def _video_duration(path: Path) -> float:
    import av  # the video extra; the model's own decoding needs it too

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return (container.duration or 0) / 1_000_000


def subtitles_at_frames(srt: Path, video: Path, frames: int) -> list[str]:
    """The subtitle lines on screen at the ``frames`` sampled instants (centres of equal slices), in order."""
    from tempflex.media import sample_times

    times = sample_times(_video_duration(video), fps=None, num_frames=frames, max_frames=None)
    lines = []
    for start, end, text in read_srt(srt):
        if any(start <= t <= end for t in times) and text not in lines:
            lines.append(text)
    return lines


def _letter_options(raw: list[str], where: str) -> dict[str, str]:
    options = {}
    for position, option in enumerate(raw):
        match = _OPTION_LINE.match(str(option))
        letter, text = (match.group(1), match.group(2)) if match else (LETTERS[position], str(option))
        options[letter] = text.strip()
    if len(options) < 2:
        raise ValueError(f"{where}: fewer than two options: {raw!r}")
    return options


def load_videomme(data: Path, frames: int | None = None, *, subtitles: bool = False) -> list[Item]:
    """Video-MME questions (see the module docstring for the layout)."""
    frames = frames or PAPER_TEST_FRAMES
    if data.is_file():
        table, root = data, data.parent.parent if data.parent.name == "videomme" else data.parent
    else:
        folder = data / "videomme" if (data / "videomme").is_dir() else data
        found = sorted(folder.glob("*.parquet")) + sorted(folder.glob("*.json")) + sorted(folder.glob("*.jsonl"))
        if not found:
            raise FileNotFoundError(f"no Video-MME annotation (parquet / json / jsonl) in {folder}")
        table, root = found[0], data
    items = []
    for number, row in enumerate(_read_table(table), start=1):
        where = f"{table}, row {number} (question {row.get('question_id')!r})"
        try:
            stem = str(row["videoID"])
            options = _letter_options(list(row["options"]), where)
            answer = str(row["answer"]).strip().upper()
            question = str(row["question"])
            groups = {key: str(row[key]) for key in ("duration", "domain", "task_type") if row.get(key)}
            item_id = str(row["question_id"])
        except KeyError as error:
            raise ValueError(f"{where}: missing column {error}") from error
        if answer not in options:
            raise ValueError(f"{where}: answer {answer!r} is not one of the options {list(options)}")
        video = _video_file(root, stem, where)
        prompt = (
            "Select the best answer to the following multiple-choice question based on the video. Respond with "
            f"only the letter ({', '.join(options)}) of the correct option.\n{question}\n"
            f"{format_options(options)}\nThe best answer is:"
        )
        if subtitles:
            srt = root / "subtitle" / f"{stem}.srt"
            if srt.exists() and video.exists():
                lines = subtitles_at_frames(srt, video, frames)
                prompt = "This video's subtitles are listed below:\n" + "\n".join(lines) + "\n" + prompt
        content = [_video_part(video, frames), {"type": "text", "text": prompt}]
        items.append(Item(item_id, content, answer, "choice", options=options, groups=groups))
    return items


def load_tempcompass(data: Path, frames: int | None = None) -> list[Item]:
    """TempCompass multi-choice questions (see the module docstring for the layout)."""
    frames = frames or PAPER_TEST_FRAMES
    path = data if data.is_file() else _find(data, ["questions/multi-choice.json", "multi-choice.json"], "TempCompass")
    root = path.parent.parent if path.parent.name == "questions" else path.parent
    items = []
    for video_id, dimensions in json.loads(path.read_text(encoding="utf-8")).items():
        for dimension, questions in dimensions.items():
            for index, entry in enumerate(questions):
                where = f"{path}: {video_id}/{dimension}/{index}"
                lines = str(entry["question"]).split("\n")
                option_lines = [line for line in lines if _OPTION_LINE.match(line)]
                question = "\n".join(line for line in lines if not _OPTION_LINE.match(line)).strip()
                options = _letter_options(option_lines, where)
                answer = str(entry["answer"]).strip()[:1].upper()
                if answer not in options:
                    raise ValueError(f"{where}: answer {entry['answer']!r} is not one of the options {list(options)}")
                prompt = f"{question}\n{format_options(options)}\n{MCQ_SUFFIX}"
                content = [_video_part(_video_file(root, video_id, where), frames), {"type": "text", "text": prompt}]
                item_id = f"{video_id}/{dimension}/{index}"
                items.append(Item(item_id, content, answer, "choice", options=options, groups={"dimension": dimension}))
    return items


def load_mlvu(data: Path, frames: int | None = None) -> list[Item]:
    """MLVU dev multiple-choice questions (see the module docstring for the layout)."""
    frames = frames or PAPER_TEST_FRAMES
    folder = data / "json" if (data / "json").is_dir() else data
    files = [p for p in sorted(folder.glob("*.json")) if p.stem.split("_", 1)[-1] in MLVU_MCQ_TASKS]
    if not files:
        raise FileNotFoundError(f"no MLVU multiple-choice json (e.g. 1_plotQA.json) in {folder}")
    items = []
    for path in files:
        task = path.stem.split("_", 1)[-1]
        for index, entry in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            where = f"{path}, entry {index}"
            candidates = [str(c) for c in entry["candidates"]]
            options = {LETTERS[i]: text for i, text in enumerate(candidates)}
            if str(entry["answer"]) not in candidates:
                raise ValueError(f"{where}: answer {entry['answer']!r} is not one of the candidates {candidates}")
            answer = LETTERS[candidates.index(str(entry["answer"]))]
            video = data / "video" / path.stem / str(entry["video"])
            prompt = f"Question: {entry['question']}\nOptions:\n{format_options(options)}\n{MCQ_SUFFIX}"
            content = [_video_part(video, frames), {"type": "text", "text": prompt}]
            items.append(Item(f"{task}/{index}", content, answer, "choice", options=options, groups={"task": task}))
    return items


def load_probe(data: Path, frames: int | None = None) -> list[Item]:
    """The built-in temporal probe's test split (``tempflex probe generate``)."""
    from tempflex.records import to_messages

    path = data if data.is_file() else _find(data, ["test.jsonl"], "probe test split")
    items = []
    for record in _read_table(path):
        where = f"{path}: record {record.get('id')!r}"
        content = to_messages(record, path.parent)[0]["content"]
        if frames:
            content = [_video_part(Path(p["video"]), frames) if p["type"] == "video" else p for p in content]
        options = {LETTERS[i]: str(text) for i, text in enumerate(record["options"])}
        if record["answer"] not in options:
            raise ValueError(f"{where}: answer {record['answer']!r} is not one of the options {list(options)}")
        items.append(
            Item(str(record["id"]), content, record["answer"], "choice", options=options,
                 groups={"task": record["task"]}, record={**record, "video": str(path.parent / record["video"])})
        )  # fmt: skip
    return items
