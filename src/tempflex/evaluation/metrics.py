"""Open-answer scores: VQA accuracy (TextVQA), ANLS (DocVQA) and exact match, each a pure function.

- ``vqa_accuracy(prediction, answers)``: the VQA v2 / TextVQA rule. Both sides go through
  ``normalize_vqa_answer``; with ``n`` human answers (10 in TextVQA) the score is the mean, over each
  answer left out in turn, of ``min(1, matches among the other n - 1 / 3)``. With 10 answers: 1 match -> 0.3,
  2 -> 0.6, 3 -> 0.9, 4 or more -> 1.0. Source: the official VQA evaluation script (``vqaEval.py``) that
  TextVQA reuses.
- ``normalize_vqa_answer``: that script's steps: lowercase; newlines and tabs to spaces; a period that is not
  followed by a digit is dropped; punctuation is removed when it touches a space or sits in "1,000"-style digits
  and otherwise becomes a space; number words ``zero``..``ten`` become digits; the articles a / an / the go;
  common contractions get their apostrophe (``dont`` -> ``don't``).
- ``anls(prediction, answers, threshold=0.5)``: DocVQA's Average Normalized Levenshtein Similarity for one
  question: the best over the answers of ``1 - NL`` where ``NL = edit distance / max(len)``, or 0 when
  ``NL >= threshold``; strings are lowercased with whitespace stripped and runs collapsed. Source: Biten et
  al., "Scene Text Visual Question Answering" (ICCV 2019) and the DocVQA challenge (threshold 0.5).
- ``exact_match(prediction, answers)``: 1.0 if the prediction equals any answer after lowercasing, collapsing
  whitespace and dropping trailing ``.``; else 0.0.

>>> vqa_accuracy("Two", ["2", "2", "two", "3", "3", "3", "3", "3", "3", "3"])
0.9
>>> anls("hello world", ["Hello World!"])
0.9166666666666666
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["anls", "exact_match", "levenshtein", "normalize_vqa_answer", "vqa_accuracy"]

_PUNCTUATION = ";/[]\"{}()=+\\_-><@`,?!*#%^&$:'"
_PERIOD = re.compile(r"\.(?!\d)")  # the script's "(?!<=\d)" never looks behind: "4." -> "4"
_COMMA_DIGITS = re.compile(r"(\d)(,)(\d)")
_NUMBERS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldnt": "couldn't", "didnt": "didn't",
    "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't", "havent": "haven't",
    "isnt": "isn't", "shouldnt": "shouldn't", "wasnt": "wasn't", "werent": "weren't", "wont": "won't",
    "wouldnt": "wouldn't", "youre": "you're", "theyre": "they're", "whats": "what's", "thats": "that's",
    "its": "it's", "lets": "let's", "im": "i'm", "ive": "i've",
}  # fmt: skip


def normalize_vqa_answer(answer: str) -> str:
    """The VQA evaluation script's answer normalisation (see the module docstring).

    >>> normalize_vqa_answer("The Two dogs.")
    '2 dogs'
    >>> normalize_vqa_answer("1,000 yen")
    '1000 yen'
    """
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    text = _COMMA_DIGITS.sub(r"\1\3", text)
    for mark in _PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        text = text.replace(mark, "" if touches_space else " ")
    text = _PERIOD.sub("", text)
    words = []
    for word in text.split():
        word = _NUMBERS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy of one prediction against the human answers (10 in VQA v2 and TextVQA)."""
    if not answers:
        raise ValueError("vqa_accuracy needs at least one human answer")
    predicted = normalize_vqa_answer(prediction)
    truth = [normalize_vqa_answer(a) for a in answers]
    if len(truth) == 1:
        return float(predicted == truth[0])
    scores = []
    for left_out in range(len(truth)):
        matches = sum(1 for i, a in enumerate(truth) if i != left_out and a == predicted)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1).

    >>> levenshtein("kitten", "sitting")
    3
    """
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _anls_form(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls(prediction: str, answers: Sequence[str], threshold: float = 0.5) -> float:
    """ANLS of one prediction: the best ``1 - NL`` over the answers, 0 where ``NL >= threshold``."""
    if not answers:
        raise ValueError("anls needs at least one answer")
    predicted = _anls_form(prediction)
    best = 0.0
    for answer in answers:
        truth = _anls_form(answer)
        longest = max(len(truth), len(predicted))
        distance = levenshtein(truth, predicted) / longest if longest else 0.0
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


def _em_form(text: str) -> str:
    return " ".join(text.strip().lower().split()).rstrip(".").strip()


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the prediction equals one of the answers after light normalisation, else 0.0."""
    predicted = _em_form(prediction)
    return float(any(predicted == _em_form(a) for a in answers))
