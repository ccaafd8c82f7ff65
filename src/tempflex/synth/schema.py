"""Validation of the model's answer: JSON, the pydantic schema, the counts, known dimensions, no repeats.

``validate_output(text, spec)`` returns a ``SynthOutput`` or raises ``InvalidOutputError`` whose message says what is
wrong in words the repair re-prompt can pass back to the model. Accepted leniently: a ```json fence or prose
around the one JSON object, dimension names in any case or with "-"/"_" for spaces (stored as spelled in the
task definitions). Rejected: not JSON, missing or mistyped keys, a caption empty or over ``max_sentences``
sentences, the wrong number of pairs, an unknown dimension, a dimension twice within one VQA type (Figure 6 asks
for "the most suitable 5 dimensions"), an empty question or answer, and the same question twice in one video.

Example::

    validate_output('{"caption": "A dog runs.", "vqa_type1": [...], "vqa_type2": [...]}', PromptSpec())
"""

from __future__ import annotations

import json
import re

try:
    from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
except ImportError as error:  # the synth extra is not installed
    raise ImportError("tempflex.synth needs pydantic: pip install 'tempflex[synth]'") from error

from tempflex.synth.prompt import PromptSpec

__all__ = ["InvalidOutputError", "QAPair", "SynthOutput", "count_sentences", "normalise_question", "validate_output"]


class InvalidOutputError(ValueError):
    """The model's answer broke the contract; the message is the reason (sent back in the repair prompt)."""


class QAPair(BaseModel):
    """One question-answer pair and the dimension it was written for."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    dimension: str
    question: str
    answer: str

    @field_validator("question", "answer", "dimension")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value


class SynthOutput(BaseModel):
    """A caption and the two VQA types of Figure 6 (type 1: vision only; type 2: may use ASR / metadata)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    caption: str
    vqa_type1: list[QAPair]
    vqa_type2: list[QAPair]

    @field_validator("caption")
    @classmethod
    def _caption_not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value


_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def count_sentences(text: str) -> int:
    """Sentences by terminal punctuation followed by a space or the end (a plain rule; "Dr. X" counts two).

    >>> count_sentences("A man walks in. He sits down! Then? The end"), count_sentences("")
    (4, 0)
    """
    return sum(1 for piece in _SENTENCE_END.split(text) if piece.strip())


def normalise_question(question: str) -> str:
    """Lower case, punctuation and repeated spaces removed: the key for spotting a repeated question.

    >>> normalise_question("  What  colour is the CAR? ")
    'what colour is the car'
    """
    return " ".join(re.sub(r"[^\w\s]", " ", question.lower()).split())


def _dimension_key(name: str) -> str:
    return " ".join(re.sub(r"[-_]", " ", name.lower()).split())


def _extract_json(text: str) -> object:
    """The JSON object in ``text``: the whole text, else the span from the first ``{`` to the last ``}``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        begin, end = text.find("{"), text.rfind("}")
        if begin >= 0 and end > begin:
            try:
                return json.loads(text[begin : end + 1])
            except json.JSONDecodeError as error:
                raise InvalidOutputError(f"the output is not valid JSON ({error.msg} at char {error.pos})") from None
        raise InvalidOutputError("the output is not JSON (no JSON object found)") from None


def validate_output(text: str, spec: PromptSpec) -> SynthOutput:
    """Parse and check one answer against ``spec``; raise ``InvalidOutputError`` naming the first problem found."""
    data = _extract_json(text)
    if not isinstance(data, dict):
        raise InvalidOutputError(f"the output must be a JSON object, got a JSON {type(data).__name__}")
    try:
        output = SynthOutput.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'output'}: {item['msg']}" for item in error.errors()[:5]
        )
        raise InvalidOutputError(f"wrong schema ({problems})") from None
    sentences = count_sentences(output.caption)
    if sentences > spec.max_sentences:
        raise InvalidOutputError(f"the caption has {sentences} sentences, more than {spec.max_sentences}")
    known = {_dimension_key(name): name for name in spec.dimensions}
    seen_questions: dict[str, str] = {}
    for key, wanted in (("vqa_type1", spec.n_type1), ("vqa_type2", spec.n_type2)):
        pairs = getattr(output, key)
        if len(pairs) != wanted:
            raise InvalidOutputError(f"{key} has {len(pairs)} question-answer pairs, expected exactly {wanted}")
        used = set()
        for index, pair in enumerate(pairs):
            name = known.get(_dimension_key(pair.dimension))
            if name is None:
                raise InvalidOutputError(f"{key}[{index}] has an unknown dimension {pair.dimension!r}")
            if name in used:
                raise InvalidOutputError(f"{key} uses the dimension {name!r} twice; choose {wanted} different ones")
            used.add(name)
            pair.dimension = name
            question = normalise_question(pair.question)
            if question in seen_questions:
                raise InvalidOutputError(f"{key}[{index}] repeats the question {seen_questions[question]!r}")
            seen_questions[question] = pair.question
    return output
