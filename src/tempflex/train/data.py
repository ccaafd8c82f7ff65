"""Training data: LLaVA-format annotations, YAML mixtures, and a dataset that tokenises with the processor.

A LLaVA-format record (JSON list or JSONL)::

    {"id": "v1", "video": "clips/v1.mp4",
     "conversations": [{"from": "human", "value": "<video>\\nWhat moves?"}, {"from": "gpt", "value": "A ball."}]}

``"image"`` may be a path or a list of paths (one per ``<image>`` in the text, in order); ``"video"`` a path
(one ``<video>``); a record with neither is text-only. An optional ``"video_options"`` object gives the
processor's frame sampling for that record's video (e.g. ``{"fps": 8}``; see ``processing.VIDEO_OPTIONS``); it
overrides the dataset's defaults. A media tag missing from the text is put at the start
of the first human turn, as LLaVA does. Roles: ``human`` -> user, ``gpt`` -> assistant, ``system`` -> system.

A mixture (YAML), the format of the official recipe::

    datasets:
      - json_path: data/captions.jsonl
        media_root: data/media        # relative paths in the records resolve here (default: the json's folder)
        sampling: "first:1000"        # or "random:10%" (seeded) or "all" (default)

``SupervisedDataset[i]`` returns the processor's tensors with ``labels`` (assistant tokens only), or ``None``
when the sample cannot be used (its media cannot be read, the record is malformed, an image is beyond any
budget): the failure is logged with the record's id and counted in
``dataset.failures``, and the collator drops the sample; it is never silently replaced by another one.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tempflex.records import to_messages

__all__ = ["SupervisedDataset", "load_annotations", "load_mixture", "to_messages"]

logger = logging.getLogger(__name__)


def load_annotations(path: str | Path) -> list[dict]:
    """Records of a LLaVA-format JSON list or JSONL file."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    records = json.loads(text)
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    return records


def _sample(records: list[dict], rule: str, seed: int, source: str) -> list[dict]:
    if rule in ("all", ""):
        return records
    kind, _, amount = rule.partition(":")
    if kind == "first":
        return records[: int(amount)]
    if kind == "random" and amount.endswith("%"):
        count = round(len(records) * float(amount[:-1]) / 100)
        return random.Random(seed).sample(records, count)
    raise ValueError(f"{source}: sampling {rule!r} is not 'all', 'first:N' or 'random:N%'")


def load_mixture(path: str | Path, *, seed: int = 0) -> list[tuple[dict, Path]]:
    """``(record, media_root)`` pairs of every dataset of a YAML mixture, after its sampling rule."""
    path = Path(path)
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict) or not isinstance(spec.get("datasets"), list):
        raise ValueError(f"{path}: a mixture needs a 'datasets' list")
    pairs = []
    for entry in spec["datasets"]:
        json_path = (path.parent / entry["json_path"]).resolve()
        media_root = (path.parent / entry["media_root"]).resolve() if "media_root" in entry else json_path.parent
        records = _sample(load_annotations(json_path), str(entry.get("sampling", "all")), seed, str(json_path))
        pairs.extend((record, media_root) for record in records)
    return pairs


@dataclass
class SupervisedDataset:
    """Records tokenised on access: ``input_ids``, ``attention_mask``, ``labels`` and pixel tensors.

    ``cache``: a dict that keeps each processed sample (and each failure) so that later epochs, and other
    datasets over the same records handed the same dict, skip decoding and tokenising. Entries are keyed by
    record id, media root and video options; a cached clip costs its pixels in float32 (a 16-frame 64x64
    clip ~0.8 MB), so use it for small sets like the probe, not for a corpus.
    """

    records: list[tuple[dict, Path]]
    processor: Any
    video_options: dict = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    cache: dict | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict | None:
        record, media_root = self.records[index]
        sample_id = str(record.get("id", index))
        key = (sample_id, str(media_root), json.dumps(self.video_options, sort_keys=True))
        if self.cache is not None and key in self.cache:
            output = self.cache[key]
            if isinstance(output, str):  # a failure, reported again for this dataset
                self.failures[sample_id] = output
                return None
            return dict(output)
        output = self._process(record, media_root, sample_id)
        if self.cache is not None:
            self.cache[key] = self.failures[sample_id] if output is None else output
        return None if output is None else dict(output)

    def _process(self, record: dict, media_root: Path, sample_id: str) -> dict | None:
        try:
            messages = to_messages(record, media_root)
            for message in messages:
                for part in message["content"]:
                    if part["type"] == "video":  # the record's own options win over the dataset's
                        for key, value in self.video_options.items():
                            part.setdefault(key, value)
            output = self.processor.apply_chat_template(
                messages, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
            )
        except ValueError as error:  # MediaError, a malformed record, an image no budget can hold: this sample only
            self.failures[sample_id] = str(error)
            logger.warning("skipping sample %s: %s", sample_id, error)
            return None
        output.pop("assistant_masks", None)
        return {key: value for key, value in output.items()}
