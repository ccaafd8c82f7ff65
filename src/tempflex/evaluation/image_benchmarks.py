"""Readers for the image benchmarks, from files the user downloaded (nothing is fetched here).

Images go to the model at native resolution (TempFlex's encoder; the processor's token cap applies).

TSV multiple choice, VLMEvalKit's format (``mmbench``, ``mmstar``, ``ai2d``); ``--data`` is the ``.tsv``::

    index  question  [hint]  A  B  [C  D ...]  answer  [category  l2-category]  image | image_path

  ``image`` is base64 (a short all-digit value points to another row's ``index`` holding the image, as
  VLMEvalKit stores repeated images); ``image_path`` is a path relative to the TSV. MMStar files without
  option columns carry them in the question (``Options: A: ..., B: ...``): they are read from there.
  MMBench is scored with CircularEval (Liu et al., "MMBench", ECCV 2024): a question counts only if the model
  answers every rotation of its options. Rows with ``index >= 1,000,000`` are rotated copies of question
  ``index % 1,000,000`` (VLMEvalKit's ``g_index``); a file without them gets the rotations made here
  (copy ``k`` moves option ``(i + k) mod n`` to letter ``i``). Scores by category (and l2-category).

TextVQA (``textvqa``)::

    DATA/TextVQA_0.5.1_val.json   # {"data": [{"question_id", "question", "image_id", "answers": [10 x str]}]}
    DATA/train_images/<image_id>.jpg   # the val images live in train_images/

DocVQA (``docvqa``), ANLS with threshold 0.5::

    DATA/val_v1.0.json            # or val_v1.0_withQT.json, or the file itself:
                                  # {"data": [{"questionId", "question", "image": "documents/x.png", "answers"}]}
    DATA/documents/x.png          # image paths are relative to the json's folder
"""

from __future__ import annotations

import csv
import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tempflex.evaluation.answers import LETTERS
from tempflex.evaluation.items import MCQ_SUFFIX, OPEN_SUFFIX, Item, format_options

__all__ = ["load_docvqa", "load_textvqa", "load_tsv_mcq", "read_tsv"]

CIRCULAR_OFFSET = 1_000_000
_INLINE_OPTIONS = re.compile(r"\s*([A-Z]):\s*(.*?)(?=,\s*[A-Z]:|$)", re.DOTALL)


@contextmanager
def _wide_csv_fields():
    """Base64 images exceed csv's default field limit (128 KiB); raise it for this read only."""
    previous = csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows of a tab-separated file with a header (quoted fields may hold tabs and newlines)."""
    with _wide_csv_fields(), path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() not in ("", "nan", "None")


def _image_source(row: dict[str, str], by_index: dict[str, dict[str, str]], folder: Path, where: str) -> str:
    if _present(row.get("image")):
        image = str(row["image"])
        if len(image) <= 64 and image.isdigit():  # a reference to the row that holds the bytes
            if image not in by_index:
                raise ValueError(f"{where}: image refers to index {image}, which is not in the file")
            image = str(by_index[image]["image"])
        return "data:image/jpeg;base64," + image
    if _present(row.get("image_path")):
        return str(folder / str(row["image_path"]))
    raise ValueError(f"{where}: no image or image_path")


def _row_options(row: dict[str, str], where: str) -> tuple[dict[str, str], str]:
    """Options and the question text (without inline options, if the options were read from it)."""
    options = {letter: str(row[letter]).strip() for letter in LETTERS if _present(row.get(letter))}
    question = str(row.get("question", ""))
    if options:
        return options, question
    head, marker, tail = question.partition("Options:")
    if marker:
        options = {m.group(1): m.group(2).strip() for m in _INLINE_OPTIONS.finditer(tail) if m.group(2).strip()}
    if len(options) < 2:
        raise ValueError(f"{where}: no option columns and no 'Options: A: ..., B: ...' in the question")
    return options, head.strip()


def _rotate(options: dict[str, str], answer: str, shift: int) -> tuple[dict[str, str], str]:
    letters = list(options)
    texts = [options[letter] for letter in letters]
    rotated = {letters[i]: texts[(i + shift) % len(texts)] for i in range(len(texts))}
    old = letters.index(answer)
    return rotated, letters[(old - shift) % len(letters)]


def load_tsv_mcq(data: Path, frames: int | None = None, *, circular: bool = False) -> list[Item]:
    """Image multiple-choice questions from a VLMEvalKit-style TSV (see the module docstring)."""
    del frames  # images only
    rows = read_tsv(data)
    by_index = {str(row["index"]): row for row in rows if _present(row.get("image")) and len(row["image"]) > 64}
    has_copies = any(int(float(row["index"])) >= CIRCULAR_OFFSET for row in rows)
    items = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{data}, line {number} (index {row.get('index')})"
        options, question = _row_options(row, where)
        answer = str(row.get("answer", "")).strip().upper()
        if answer not in options:
            raise ValueError(f"{where}: answer {row.get('answer')!r} is not one of the options {list(options)}")
        index = int(float(row["index"]))
        image = _image_source(row, by_index, data.parent, where)
        groups = {
            key.replace("-", "_"): str(row[key])
            for key in ("category", "l2-category", "l2_category")
            if _present(row.get(key))
        }
        hint = f"Hint: {row['hint']}\n" if _present(row.get("hint")) else ""
        shifts = range(len(options)) if circular and not has_copies else [0]
        for shift in shifts:
            shown, truth = _rotate(options, answer, shift)
            prompt = f"{hint}Question: {question}\nOptions:\n{format_options(shown)}\n{MCQ_SUFFIX}"
            content = [{"type": "image", "image": image}, {"type": "text", "text": prompt}]
            item_id = str(index) if shift == 0 else f"{index}@{shift}"
            group = str(index % CIRCULAR_OFFSET) if circular else None
            items.append(Item(item_id, content, truth, "choice", options=shown, groups=groups, circular=group))
    return items


def _json_data(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path}: expected {{'data': [...]}}")
    return data["data"]


def _pick(data: Path, names: list[str], what: str) -> Path:
    if data.is_file():
        return data
    for name in names:
        if (data / name).exists():
            return data / name
    raise FileNotFoundError(f"no {what} annotation in {data}: looked for {', '.join(names)}")


def load_textvqa(data: Path, frames: int | None = None) -> list[Item]:
    """TextVQA questions with their 10 human answers (see the module docstring)."""
    del frames
    path = _pick(data, ["TextVQA_0.5.1_val.json"], "TextVQA")
    items = []
    for entry in _json_data(path):
        where = f"{path}: question {entry.get('question_id')!r}"
        if not entry.get("answers"):
            raise ValueError(f"{where}: no answers (the test split has none; use val)")
        image = path.parent / "train_images" / f"{entry['image_id']}.jpg"
        content = [
            {"type": "image", "image": str(image)},
            {"type": "text", "text": f"{entry['question']}\n{OPEN_SUFFIX}"},
        ]
        items.append(Item(str(entry["question_id"]), content, list(entry["answers"]), "vqa"))
    return items


def load_docvqa(data: Path, frames: int | None = None) -> list[Item]:
    """DocVQA questions, scored by ANLS (see the module docstring)."""
    del frames
    path = _pick(data, ["val_v1.0.json", "val_v1.0_withQT.json", "val/val_v1.0.json"], "DocVQA")
    items = []
    for entry in _json_data(path):
        where = f"{path}: question {entry.get('questionId')!r}"
        if not entry.get("answers"):
            raise ValueError(f"{where}: no answers (the test split has none; use val)")
        content = [
            {"type": "image", "image": str(path.parent / entry["image"])},
            {"type": "text", "text": f"{entry['question']}\n{OPEN_SUFFIX}"},
        ]
        items.append(Item(str(entry["questionId"]), content, list(entry["answers"]), "anls"))
    return items
