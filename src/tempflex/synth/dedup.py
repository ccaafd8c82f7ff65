"""De-duplication of videos: identical ones by content hash, near-identical ones by a perceptual hash of frames.

- ``content_hash(path)``: SHA-256 of the bytes (first 32 hex digits): the video id, so a renamed or copied file is
  the same video and is never sent twice.
- ``perceptual_hash(frames)``: a 64-bit difference hash (dHash: is each pixel of a 9x8 grey thumbnail brighter
  than its right neighbour) per frame, frames sampled evenly (``PHASH_FRAMES``). Re-encoding, rescaling or a
  change of bitrate moves a few bits; different content moves about half of them.
- ``near_duplicates(hashes, threshold)``: greedy over videos in a fixed order: a video whose mean per-frame Hamming
  distance to an earlier kept video is <= ``threshold`` bits is a duplicate of it; the order (kept videos first,
  then registration order) makes the decision the same on every rerun. Cost: one vectorised comparison with the
  kept set per video, O(n * kept); about a minute for 100k videos on one core.

Example::

    video_phash("a.mp4")           # -> '3c1e0f0f...' (16 hex digits per frame, PHASH_FRAMES frames)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from tempflex.media import load_video

__all__ = ["PHASH_FRAMES", "content_hash", "hamming", "near_duplicates", "perceptual_hash", "video_phash"]

PHASH_FRAMES = 4
"""Frames per video in its perceptual hash (spread evenly over the video)."""


def content_hash(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, first 32 hex digits (128 bits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:32]


def _dhash(frame: np.ndarray) -> int:
    grey = np.asarray(Image.fromarray(frame).convert("L").resize((9, 8), Image.Resampling.BILINEAR), np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()  # [8, 8] -> [64]
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def perceptual_hash(frames: np.ndarray) -> str:
    """dHash of each of ``[F, H, W, 3]`` frames, concatenated as hex (16 digits per frame).

    >>> perceptual_hash(np.zeros((2, 16, 16, 3), np.uint8))
    '00000000000000000000000000000000'
    """
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"expected frames [F, H, W, 3], got shape {tuple(frames.shape)}")
    return "".join(f"{_dhash(frame):016x}" for frame in frames)


def video_phash(path: str | Path, timeout: float = 600.0) -> str:
    """The perceptual hash of ``PHASH_FRAMES`` frames spread over a video (``MediaError`` if unreadable)."""
    return perceptual_hash(load_video(path, num_frames=PHASH_FRAMES, max_frames=None, timeout=timeout).frames)


def _words(phash: str) -> np.ndarray:
    return np.array([int(phash[i : i + 16], 16) for i in range(0, len(phash), 16)], np.uint64)


def hamming(a: str, b: str) -> float:
    """Mean Hamming distance in bits (0-64) between two perceptual hashes of the same frame count.

    >>> hamming("00000000000000ff", "000000000000000f")
    4.0
    """
    if len(a) != len(b):
        raise ValueError(f"perceptual hashes of different lengths: {len(a)} and {len(b)} hex digits")
    return float(np.mean([bin(int(x) ^ int(y)).count("1") for x, y in zip(_words(a), _words(b), strict=True)]))


def near_duplicates(ordered: list[tuple[str, str]], threshold: float) -> dict[str, tuple[str, float]]:
    """``{video_id: (kept_id, distance)}`` for each video within ``threshold`` bits of an earlier kept one.

    ``ordered``: ``(video_id, phash)`` in priority order (earlier wins). Hashes of another length than the first
    are compared with nothing (a different ``PHASH_FRAMES``).

    >>> near_duplicates([("a", "00000000000000ff"), ("b", "000000000000007f"), ("c", "ffffffffffffff00")], 4)
    {'b': ('a', 1.0)}
    """
    if not ordered:
        return {}
    width = len(ordered[0][1])
    kept_ids: list[str] = []
    kept = np.empty((len(ordered), width // 16), np.uint64)  # [N, frames]
    found: dict[str, tuple[str, float]] = {}
    for video_id, phash in ordered:
        if len(phash) != width:
            continue
        words = _words(phash)
        if kept_ids:
            xor = np.bitwise_xor(kept[: len(kept_ids)], words[None, :])  # [K, frames]
            distance = np.unpackbits(xor.view(np.uint8), axis=1).reshape(len(kept_ids), -1).sum(1) / len(words)
            best = int(np.argmin(distance))
            if distance[best] <= threshold:
                found[video_id] = (kept_ids[best], float(distance[best]))
                continue
        kept[len(kept_ids)] = words
        kept_ids.append(video_id)
    return found
