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
        sampling_strategy: "first:1000"   # or end:N, random:N (seeded); N a count or N%; "all" (default)

Where a record came from: ``load_entries`` / ``load_mixture`` give ``Entry`` pairs (a ``(record, media_root)``
tuple that also holds ``file`` and ``line`` of a JSONL file, or ``index`` in a JSON list), and
``load_annotations(path).locations[i]`` says the same of the i-th record. A line that is not JSON or not an object
is not a record: ``load_annotations`` lists it in ``.rejected`` (``load_entries`` keeps it as an ``Entry`` with its
``error``), so it is reported as a failure rather than ending the run; only a file whose every line is bad raises.

``SupervisedDataset[i]`` returns the processor's tensors with ``labels`` (assistant tokens only), or ``None``
when the sample cannot be used (the record is malformed or has no assistant turn, ``check_record``; its media
cannot be read; an image is beyond any budget; no token is supervised): the failure is logged with the record's
id, file and line, counted in ``dataset.failures`` (id -> reason) and listed in ``dataset.skipped`` (index ->
``{"id" (when the record has one), "file", "line" | "index", "reason"}``), and the collator drops the sample.

Training does not hand the Trainer ``SupervisedDataset`` itself but ``SkippingDataset`` (see there): records
that ``check_record`` refuses are left out before training (never part of an epoch), and a sample whose media
fail at load time is replaced by the next usable index, so that no batch is ever empty, whatever the batch size.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from tempflex.records import to_messages

__all__ = [
    "Annotations",
    "Entry",
    "SkippingDataset",
    "SupervisedDataset",
    "TooManyFailuresError",
    "check_record",
    "load_annotations",
    "load_entries",
    "load_mixture",
    "locate",
    "to_messages",
]

logger = logging.getLogger(__name__)


class Entry(tuple):
    """A ``(record, media_root)`` pair that also says where the record was read.

    ``file``: the annotation file; ``line``: its 1-based line in a JSONL file, or ``index``: its position in a JSON
    list; ``error``: why the line is not a record at all (not JSON, not an object), else ``None``. It compares and
    unpacks as the plain pair.
    """

    file: str | None
    line: int | None
    index: int | None
    error: str | None

    def __new__(
        cls,
        record: Any,
        media_root: Path,
        *,
        file: str | None = None,
        line: int | None = None,
        index: int | None = None,
        error: str | None = None,
    ) -> Entry:
        entry = super().__new__(cls, (record, media_root))
        entry.file, entry.line, entry.index, entry.error = file, line, index, error
        return entry

    def __reduce__(self) -> tuple:
        return _entry, (self[0], self[1], self.location())

    def location(self) -> dict:
        """``{"file": ..., "line": ...}`` (or ``"index"``), with only what is known."""
        return {k: v for k, v in (("file", self.file), ("line", self.line), ("index", self.index)) if v is not None}


def _entry(record: Any, media_root: Path, location: dict) -> Entry:
    return Entry(record, media_root, **location)


def locate(pair: tuple) -> dict:
    """Where a ``(record, media_root)`` pair came from: ``Entry.location()``, or ``{}`` for a plain pair."""
    return pair.location() if isinstance(pair, Entry) else {}


class Annotations(list):
    """The records (dicts) of an annotation file, in order, with ``locations[i]`` (``{"file", "line" | "index"}``)
    of ``self[i]`` and ``rejected``: ``{"file", "line" | "index", "reason"}`` of each line that is not a record."""

    locations: list[dict]
    rejected: list[dict]


def _read(path: Path) -> list[tuple[Any, dict, str | None]]:
    """``(value, location, error)`` of every non-blank line (JSONL) or element (JSON list), in order."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        items = []
        for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON may hold U+2028
            if not line.strip():
                continue
            location = {"file": str(path), "line": number}
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                items.append((None, location, f"not JSON: {error}"))
                continue
            items.append((value, location, None if isinstance(value, dict) else _not_an_object(value)))
    else:
        values = json.loads(text)
        if not isinstance(values, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        items = [
            (value, {"file": str(path), "index": i}, None if isinstance(value, dict) else _not_an_object(value))
            for i, value in enumerate(values)
        ]
    if items and all(error is not None for _, _, error in items):
        raise ValueError(f"{path}: no line is a record (line/element 1: {items[0][2]})")
    return items


def _not_an_object(value: Any) -> str:
    return f"not a JSON object (a {type(value).__name__})"


def load_annotations(path: str | Path) -> Annotations:
    """Records of a LLaVA-format JSON list or JSONL file (see ``Annotations``: their locations, the bad lines).

    A line that is not JSON or not an object is listed in ``.rejected``, not raised; a file with no usable line
    at all raises ``ValueError``.
    """
    path = Path(path)
    records = Annotations()
    records.locations, records.rejected = [], []
    for value, location, error in _read(path):
        if error is None:
            records.append(value)
            records.locations.append(location)
        else:
            records.rejected.append({**location, "reason": error})
    return records


def _entries(path: Path, media_root: Path) -> list[Entry]:
    return [Entry(value, media_root, **location, error=error) for value, location, error in _read(path)]


def _sample(records: list, rule: str, seed: int, source: str) -> list:
    """LLaVA-NeXT's ``sampling_strategy``: ``all``, ``first:N``, ``end:N`` or ``random:N`` (seeded), where N is a
    count or a percentage of the file (rounded to the nearest record, at most all of them); ``random`` keeps the
    drawn records in file order.

    >>> [_sample(list(range(10)), rule, 0, "x") for rule in ("first:3", "end:20%", "all")]
    [[0, 1, 2], [8, 9], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]
    >>> len(_sample(list(range(10)), "random:50%", 0, "x")), _sample(list(range(4)), "random:4", 0, "x")
    (5, [0, 1, 2, 3])
    """
    if rule in ("all", ""):
        return records
    kind, _, amount = rule.partition(":")
    try:
        count = round(len(records) * float(amount[:-1]) / 100) if amount.endswith("%") else int(amount)
    except ValueError:
        count = -1
    if kind not in ("first", "end", "random") or count < 0:
        raise ValueError(f"{source}: sampling {rule!r} is not 'all', 'first:N', 'end:N' or 'random:N' (N or N%)")
    count = min(count, len(records))
    if kind == "first":
        return records[:count]
    if kind == "end":
        return records[len(records) - count :]
    drawn = sorted(random.Random(seed).sample(range(len(records)), count))
    return [records[i] for i in drawn]


def load_entries(path: str | Path, media_root: str | Path | None = None) -> list[Entry]:
    """``Entry`` pairs of every line of a LLaVA JSON / JSONL file (media root: the file's folder by default);
    a line that is not a record is kept with its ``error`` so that training lists it as a failure."""
    path = Path(path)
    return _entries(path, Path(media_root) if media_root is not None else path.parent.resolve())


def load_mixture(path: str | Path, *, seed: int = 0) -> list[Entry]:
    """``(record, media_root)`` pairs (``Entry``) of every dataset of a YAML mixture, after its sampling rule.

    The sampling rule counts every line of the file, records and bad lines alike (a bad line drawn is a failure).
    """
    path = Path(path)
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict) or not isinstance(spec.get("datasets"), list):
        raise ValueError(f"{path}: a mixture needs a 'datasets' list")
    pairs = []
    for entry in spec["datasets"]:
        json_path = (path.parent / entry["json_path"]).resolve()
        media_root = (path.parent / entry["media_root"]).resolve() if "media_root" in entry else json_path.parent
        entries = _entries(json_path, media_root)
        rule = entry.get("sampling_strategy", entry.get("sampling", "all"))  # LLaVA-NeXT's key, or ours
        pairs.extend(_sample(entries, str(rule), seed, str(json_path)))
    return pairs


def check_record(record: Any) -> str | None:
    """Why a record cannot be trained on, found without reading its media; ``None`` when it can.

    The media fields' types (``image`` a path or list of paths, ``video`` a path, ``video_options`` an object),
    what ``records.to_messages`` checks (turns with ``from`` and a string ``value``, known speakers, tags vs
    files), and at least one assistant turn with text (else nothing is supervised).
    """
    if not isinstance(record, dict):
        return _not_an_object(record)
    images = record.get("image") or []
    if not (isinstance(images, str) or (isinstance(images, list) and all(isinstance(i, str) for i in images))):
        return "'image' is neither a path nor a list of paths"
    if record.get("video") and not isinstance(record["video"], str):
        return "'video' is not a path"
    if not isinstance(record.get("video_options") or {}, dict):
        return "'video_options' is not an object"
    try:  # the conversation's shape, speakers and tags: the one reader every user of records shares
        messages = to_messages(record, Path("."))
    except ValueError as error:
        return str(error)
    answered = any(
        message["role"] == "assistant" and any(part.get("text", "").strip() for part in message["content"])
        for message in messages
    )
    if not answered:
        return "no assistant turn with text: no token to train on"
    return None


@dataclass
class SupervisedDataset:
    """Records tokenised on access: ``input_ids``, ``attention_mask``, ``labels`` and pixel tensors.

    ``records``: ``(record, media_root)`` pairs; ``Entry`` pairs let failures name their file and line.
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
    skipped: dict[int, dict] = field(default_factory=dict)
    max_length: int | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict | None:
        record, media_root = self.records[index]
        sample_id = str(record.get("id", index)) if isinstance(record, dict) else str(index)
        key = (sample_id, str(media_root), json.dumps(self.video_options, sort_keys=True))
        if self.cache is not None and key in self.cache:
            output = self.cache[key]
            if isinstance(output, str):  # a failure, reported again for this dataset
                self._fail(index, sample_id, output, log=False)
                return None
            return dict(output)
        output = self._process(index, record, media_root, sample_id)
        if self.cache is not None:
            self.cache[key] = self.failures[sample_id] if output is None else output
        return None if output is None else dict(output)

    def _fail(self, index: int, sample_id: str, reason: str, *, log: bool = True) -> None:
        self.failures[sample_id] = reason
        self.skipped[index] = _failure(self.records[index], reason)
        if log:
            _log_failure(sample_id, self.skipped[index])

    def _process(self, index: int, record: Any, media_root: Path, sample_id: str) -> dict | None:
        error = getattr(self.records[index], "error", None) or check_record(record)
        if error is not None:
            self._fail(index, sample_id, error)
            return None
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
        except ValueError as error:  # MediaError, an image no budget can hold: this sample only
            self._fail(index, sample_id, str(error))
            return None
        output.pop("assistant_masks", None)
        if self.max_length is not None and output["input_ids"].shape[-1] > self.max_length:
            reason = self._truncate(output, index, sample_id)
            if reason is not None:
                self._fail(index, sample_id, reason)
                return None
        if "labels" in output and not bool((output["labels"] != -100).any()):
            self._fail(index, sample_id, "no supervised token (the assistant turns tokenise to nothing)")
            return None
        return {key: value for key, value in output.items()}

    def _truncate(self, output: dict, index: int, sample_id: str) -> str | None:
        """Cut ``output`` to ``max_length`` tokens in place (its tail: the end of the conversation), or say why not.

        The policy of ``--max-length``: text after the cut is dropped (logged with the counts), as LLaVA does with
        ``model_max_length``; a visual span is never cut, so a sample whose visual tokens reach past the limit is
        skipped instead (a failure naming both lengths).
        """
        length = output["input_ids"].shape[-1]
        placeholders = torch.zeros(length, dtype=torch.bool)
        for token_id in (self.processor.image_token_id, self.processor.video_token_id):
            placeholders |= output["input_ids"][0] == token_id
        visual_end = int(placeholders.nonzero().max()) + 1 if bool(placeholders.any()) else 0
        if visual_end > self.max_length:
            return f"{length} tokens and its visual tokens end at {visual_end}, past --max-length {self.max_length}"
        for key in ("input_ids", "attention_mask", "labels"):
            if key in output:
                output[key] = output[key][:, : self.max_length]  # [1, L] -> [1, max_length]
        logger.warning(
            "sample %s%s: %d tokens, the last %d cut (--max-length %d)",
            sample_id, _where(locate(self.records[index])), length, length - self.max_length, self.max_length,
        )  # fmt: skip
        return None


def _failure(pair: tuple, reason: str) -> dict:
    """A line of failures.json: the record's ``id`` (when it has one), ``file``, ``line`` or ``index``, ``reason``."""
    record = pair[0]
    known = {"id": record["id"]} if isinstance(record, dict) and "id" in record else {}
    return {**known, **locate(pair), "reason": reason}


def _where(location: dict) -> str:
    """`` (file:line)`` / `` (index)`` of a record's location for a log line, or ``""`` when it has none."""
    where = ":".join(str(location[k]) for k in ("file", "line", "index") if k in location)
    return f" ({where})" if where else ""


def _log_failure(sample_id: str, failure: dict) -> None:
    logger.warning("skipping sample %s%s: %s", sample_id, _where(failure), failure["reason"])


class TooManyFailuresError(ValueError):
    """More than the allowed share of the samples failed (see ``SkippingDataset``)."""


@dataclass
class SkippingDataset:
    """What training hands the Trainer: every index gives a usable sample, so no batch is ever empty.

    ``dataset`` holds only the records that passed ``check_record``; ``rejected`` lists those that did not (a line
    that is not a record, a malformed record, no assistant turn) as ``{"id", "file", "line" | "index",
    "reason"}``: they are never part of an epoch, so the epoch length and the step count are those of the usable
    records. A sample whose media fail when it is loaded is recorded in ``dataset.skipped`` and replaced by the
    next index that loads (``i + 1``, ``i + 2``, ... wrapping around): deterministic, so a seed and a resumed run
    see the same data; the replacement is seen once more in that epoch, and a known failure is not loaded again.
    Each step thus trains on ``batch_size`` real samples and the logged loss is over real supervised tokens only
    (no empty or padded-out batch is ever counted as a step).

    ``max_failure_share``: once more than this share of all samples (``rejected`` + usable records) has failed,
    loading raises ``TooManyFailuresError``, naming the counts; ``1.0`` never stops except when nothing loads at all.
    """

    dataset: SupervisedDataset
    rejected: list[dict] = field(default_factory=list)
    max_failure_share: float = 0.5

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def total(self) -> int:
        """Samples in all: the usable records and the rejected ones."""
        return len(self.dataset) + len(self.rejected)

    @property
    def failures(self) -> list[dict]:
        """Every failure so far: the rejected records, then the samples skipped at load time (in index order)."""
        return [*self.rejected, *(self.dataset.skipped[i] for i in sorted(self.dataset.skipped))]

    def record_skipped(self, skipped: list[tuple[int, dict]]) -> None:
        """Take ``(index, failure)`` pairs found in another process (a DataLoader worker) into ``dataset.skipped``,
        then check the share: workers hold copies of the dataset, so the main process learns of failures here."""
        for index, failure in skipped:
            self.dataset.skipped.setdefault(int(index), failure)
        self.check_share()

    def check_share(self) -> None:
        """Raise ``TooManyFailuresError`` when more than ``max_failure_share`` of the samples have failed."""
        failed = len(self.rejected) + len(self.dataset.skipped)
        if failed > self.max_failure_share * self.total or failed >= self.total:
            raise TooManyFailuresError(
                f"{failed} of {self.total} samples failed ({failed / max(self.total, 1):.0%}), more than the "
                f"allowed share of {self.max_failure_share:.0%} (max_failure_share / --max-failure-share)"
            )

    def __getitem__(self, index: int) -> dict:
        """The sample at ``index`` or the next usable one; ``"skipped"`` lists the ``(index, failure)`` pairs found
        on the way (the collators pass them on, ``StageTrainer`` takes them into the main process)."""
        size = len(self.dataset)
        found = []
        for offset in range(size):
            position = (index + offset) % size
            if position in self.dataset.skipped:
                continue
            sample = self.dataset[position]
            if sample is not None:
                return {**sample, "skipped": found} if found else sample
            found.append((position, self.dataset.skipped[position]))
            self.check_share()
        self.check_share()
        raise TooManyFailuresError(f"every sample of the {self.total} failed")

    @classmethod
    def build(
        cls, records: list[tuple[Any, Path]], processor: Any, *, max_failure_share: float = 0.5, **options: Any
    ) -> SkippingDataset:
        """Check every record (``check_record``, no media read), keep the usable ones in a ``SupervisedDataset``
        (``options``: its ``video_options``, ``cache``, ``max_length``) and list the others in ``rejected``."""
        usable, rejected = [], []
        for index, pair in enumerate(records):
            record = pair[0]
            reason = getattr(pair, "error", None) or check_record(record)
            if reason is None:
                usable.append(pair)
                continue
            rejected.append(_failure(pair, reason))
            _log_failure(str(record.get("id", index)) if isinstance(record, dict) else str(index), rejected[-1])
        return cls(SupervisedDataset(usable, processor, **options), rejected, max_failure_share)
