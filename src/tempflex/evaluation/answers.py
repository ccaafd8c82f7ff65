"""Multiple-choice answer extraction from free model text: which option letter, if any, did the model give?

``extract_choice(text, options)`` returns one letter or ``None``. Rules, applied in this order (the first rule
that finds anything decides):

0. Thinking: a ``<think>...</think>`` block is dropped; text after a lone ``</think>`` (templates that open
   the block in the prompt) is kept; an unclosed ``<think>`` means the model never answered: ``None``.
   Markdown emphasis (``**B**``) is removed.
1. The whole reply is one letter, maybe bracketed or punctuated: ``B``, ``(b)``, ``B.``, ``[C]``.
2. The reply starts with a labelled letter: ``B. blue``, ``(B) blue``, ``B) blue``, ``B: blue``.
3. Answer phrases: ``Answer: B``, ``The answer is (B)``, ``the correct option is C``, ``Option B``.
4. Bracketed letters anywhere: ``... so (C) fits``.
5. Bare capital letters standing alone as words: ``I think B is right``; an ``A`` that opens a sentence
   before a lowercase word (``A man walks``) is read as the article.
6. Option text: the reply equals an option's text, or contains exactly one option's text as whole words
   (an option contained in another matching option, "blue" in "light blue", yields to the longer one).

Within a rule, several *different* letters mean no answer (``B or C`` -> ``None``); the same letter repeated
counts once. Lowercase letters count only where they cannot be an English word (rules 1, 2 with a bracket,
and an answer phrase ending the reply or a bracket), so "the answer is a dog" is not option A.

Where the rules come from: VLMEvalKit's ``can_infer`` (exact option text or one letter among the reply's
words, else no answer without an LLM judge) and lmms-eval's Video-MME / MMBench extractors (strip "The
answer is", "Answer:", brackets, then take the leading letter). We add the thinking rule and the
conflicting-letter rule, and never ask an LLM judge, so every score is a pure function of the reply.

>>> extract_choice("The answer is B) blue", {"A": "red", "B": "blue"})
'B'
>>> extract_choice("light blue", ["blue", "light blue"])
'B'
>>> extract_choice("B or C, hard to say") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["LETTERS", "extract_choice", "normalize_options"]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_WHOLE = re.compile(r"^\W*[(\[]?\s*([A-Za-z])\s*[)\]]?\W*$")
_LEADING_UPPER = re.compile(r"^\s*[(\[]?([A-Z])\s*[).:\]](?:\s|$)")
_LEADING_LOWER = re.compile(r"^\s*[(\[]?([a-z])[)\]](?:\s|$)")
_PHRASE = re.compile(
    r"(?:answer|option|choice)s?(?:\s+(?:is|would be|should be|will be|must be))?\s*[:\-]?\s*"
    r"(?:(?:option|choice|letter)\s+)?([(\[]?)([A-Za-z])(?=([)\].,:;!?]|\s|$))",
    re.IGNORECASE,
)
_BRACKETED = re.compile(r"\(([A-Za-z])\)")
_BARE = re.compile(r"(?<![\w'\u2019-])([A-Z])(?![\w'\u2019-])")
_WORD = re.compile(r"[a-z0-9]+")


def normalize_options(options: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """Options as ``{letter: text}``; a list gets letters ``A, B, ...`` in order.

    >>> normalize_options(["red", "blue"])
    {'A': 'red', 'B': 'blue'}
    """
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return {str(k).upper(): str(v) for k, v in options.items()}
    return {LETTERS[i]: str(text) for i, text in enumerate(options)}


def _strip_thinking(text: str) -> str | None:
    text = _THINK.sub(" ", text)
    lower = text.lower()
    if "</think>" in lower:
        text = text[lower.rindex("</think>") + len("</think>") :]
    elif "<think>" in lower:
        return None  # the model was still thinking when it stopped
    return text.replace("**", "").replace("__", "")


def _one(found: list[str], valid: str) -> str | bool | None:
    """The single valid letter found; ``None`` if they disagree; ``False`` if nothing was found."""
    letters = {letter.upper() for letter in found if letter.upper() in valid}
    if not letters:
        return False
    return letters.pop() if len(letters) == 1 else None


def _phrase_letters(text: str) -> list[str]:
    found = []
    for match in _PHRASE.finditer(text):
        bracket, letter, after = match.group(1), match.group(2), match.group(3)
        if letter.isupper():
            found.append(letter)
        elif (bracket and after in ")]") or not text[match.end() :].strip(" .!\n"):
            found.append(letter)  # lowercase only when it cannot be a word: "(b)" or the reply's end
    return found


def _words(text: str) -> str:
    return " " + " ".join(_WORD.findall(text.lower())) + " "


def _option_text(text: str, options: dict[str, str]) -> str | bool | None:
    reply = _words(text)
    texts = {letter: _words(option) for letter, option in options.items() if option.strip()}
    exact = [letter for letter, words in texts.items() if words == reply]
    if len(exact) == 1:
        return exact[0]
    hits = [letter for letter, words in texts.items() if words.strip() and words in reply]
    hits = [a for a in hits if not any(a != b and texts[a] in texts[b] for b in hits)]
    if not hits:
        return False
    return hits[0] if len(hits) == 1 else None


def extract_choice(
    text: str | None,
    options: Mapping[str, str] | Sequence[str] | None = None,
    *,
    letters: str | None = None,
) -> str | None:
    """The option letter a free-text reply chooses, or ``None`` (see the module docstring for the rules).

    ``letters`` are the valid choices (default: the options' letters, or ``A``-``E`` without options).
    """
    if not text:
        return None
    choices = normalize_options(options)
    valid = letters or "".join(choices) or LETTERS[:5]
    stripped = _strip_thinking(text)
    if stripped is None or not stripped.strip():
        return None
    stripped = stripped.strip()
    whole = _WHOLE.match(stripped)
    if whole:
        return whole.group(1).upper() if whole.group(1).upper() in valid else None
    for rule in (
        lambda s: [m.group(1) for m in (_LEADING_UPPER.match(s), _LEADING_LOWER.match(s)) if m],
        _phrase_letters,
        lambda s: _BRACKETED.findall(s),
        lambda s: [m.group(1) for m in _BARE.finditer(s) if not _is_article(s, m)],
    ):
        result = _one(rule(stripped), valid)
        if result is not False:
            return result
    if choices:
        result = _option_text(stripped, choices)
        if result is not False:
            return result
    return None


def _is_article(text: str, match: re.Match) -> bool:
    """``A``/``I`` used as a word: ``A man ...`` (a lowercase word follows) or the pronoun ``I think``."""
    if match.group(1) not in "AI":
        return False
    rest = text[match.end() :]
    return bool(re.match(r"\s+[a-z]", rest)) or (match.group(1) == "I" and bool(re.match(r"\s*'", rest)))
