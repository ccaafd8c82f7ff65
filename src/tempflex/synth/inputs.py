"""Inputs of a synthesis job: which videos, and the metadata that goes with each.

``find_videos(source)``: a folder (searched recursively for video suffixes, sorted), a text file with one path per
line (relative to the file's folder; ``#`` starts a comment), or one video file.

``load_metadata(path)``: a JSONL file, one object per video, keyed by ``"video"`` (a path relative to the JSONL's
folder, or a bare file name) and holding any of ``title``, ``tags``, ``asr``, ``activities``, ``objects``,
``summary`` (sent to the model) and ``source`` (the dataset name, for ``tempflex synth stats``). Unknown keys are
kept. ``metadata_for(video, table)`` looks a video up by its resolved path, then by its file name.

Example::

    videos = find_videos("clips/")              # -> [PosixPath('clips/a.mp4'), PosixPath('clips/b.mp4')]
    table = load_metadata("clips/meta.jsonl")   # {"video": "a.mp4", "title": "...", "asr": "...", "source": "vatex"}
    metadata_for(videos[0], table)["title"]
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["VIDEO_SUFFIXES", "find_videos", "load_metadata", "metadata_for"]

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".flv", ".ts", ".wmv"}
"""File suffixes taken as videos when a folder is scanned."""


def find_videos(source: str | Path) -> list[Path]:
    """Video paths of a folder, a list file or a single video (see the module docstring)."""
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not source.is_file():
        raise ValueError(f"videos {str(source)!r}: no such folder or file")
    if source.suffix.lower() in VIDEO_SUFFIXES:
        return [source]
    paths = []
    for line in source.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            path = Path(line) if Path(line).is_absolute() else source.parent / line
            paths.append(path)
    if not paths:
        raise ValueError(f"video list {str(source)!r} names no video")
    return paths


def load_metadata(path: str | Path) -> dict[str, dict]:
    """``{key: record}`` of a metadata JSONL, each record under its resolved path and under its file name."""
    path = Path(path)
    table: dict[str, dict] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("video"), str):
            raise ValueError(f"{path}:{number}: a metadata line needs a 'video' string (path or file name)")
        video = record["video"]
        table[str((path.parent / video).resolve())] = record
        table.setdefault(Path(video).name, record)
    return table


def metadata_for(video: Path, table: dict[str, dict]) -> dict:
    """The metadata record of a video (without its ``"video"`` key), or ``{}``."""
    record = table.get(str(video.resolve())) or table.get(video.name) or {}
    return {key: value for key, value in record.items() if key != "video"}
