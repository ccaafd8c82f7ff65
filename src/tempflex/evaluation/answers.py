"""Multiple-choice answer extraction from free model text: which option letter, if any, did the model give?

``extract_choice(text, options)`` returns one letter or ``None``. Rules, applied in this order (the first rule
that finds anything decides), each with the reason it exists:

0. Thinking: a ``<think>...</think>`` block is dropped; text after a lone ``</think>`` (templates that open
   the block in the prompt) is kept; an unclosed ``<think>`` means the model never answered: ``None``.
   Markdown emphasis (``**B**``) is removed. Reason: reasoning models weigh every option before answering.
1. The whole reply is one letter, maybe bracketed or punctuated: ``B``, ``(b)``, ``B.``, ``[C]``.
   Reason: the format the prompts ask for; nothing else in the reply can contradict it.
2. Explicit answers: a labelled letter opening the reply (``B. blue``, ``(B) blue``, ``B) blue``, ``B: blue``)
   and answer statements anywhere (``Answer: B``, ``The answer is (B)``, ``the best option is C``,
   ``Choice: D``, ``I would choose option B``). Reason: once the model states its answer, what follows is
   discussion: ``Answer: B\\nOption A is wrong because...`` is B. All explicit answers must agree (``Answer:
   B. Wait, the answer is C.`` is ``None``), and a statement naming several letters (``The answer is B or C``)
   is a hedge. The opening label does not count when the reply echoes the option list (two lines opening
   with different labels, or three different bracketed letters), since then it is the first option, not a choice.
3. Option mentions: ``Option C is correct``, ``option B``. Reason: weaker than an answer statement, stronger
   than a letter in passing.
4. Bracketed letters anywhere: ``... so (C) fits``. Reason: options are printed as ``(A) ...`` in prompts.
5. Bare capital letters standing alone as words: ``I think B is right``; an ``A`` that opens a sentence
   before a lowercase word (``A man walks``) is read as the article, an ``I`` before a word as the pronoun.
   Reason: short replies that are not in any of the forms above.
6. Option text: the reply equals an option's text, or contains exactly one option's text as whole words
   (an option contained in another matching option, "blue" in "light blue", yields to the longer one).
   Reason: models that answer with the content instead of the letter.

Negated choices are not choices (rules 3-6): a letter or option text after ``not``, ``n't``, ``nor``,
``neither``, ``rather than``, ``instead of`` or ``except`` (``it's B, not A``; ``the answer is not B; it is
C``; ``not A or B``), or before ``is wrong``, ``is incorrect``, ``is not correct``, ``can be ruled out``
(``A is wrong, B fits``). Reason: a rejected option is discussion, not a second answer.

Within a rule, several *different* letters left after that mean no answer (``B or C``, ``Either B or C``,
``B and C are both plausible`` -> ``None``); the same letter repeated counts once. Lowercase letters count
only where they cannot be an English word (rules 1, 2 with a bracket or ending the reply, bracketed
mentions), so "the answer is a dog" is not option A.

Where the rules come from: VLMEvalKit's ``can_infer`` (exact option text or one letter among the reply's
words, else no answer without an LLM judge) and its Video-MME ``extract_characters_regex`` (strip "The answer
is", "Answer:", then take the first capital A-D), and lmms-eval's ``extract_mcq_answer`` (letters in several
formats, the last one in the most answer-like format wins). We add the thinking, negation and conflicting-letter
rules, and never ask an LLM judge, so every score is a pure function of the reply.
``benchmarks/extraction_agreement.py`` compares them on the reply table of ``tests/reply_table.py``.

>>> extract_choice("The answer is B) blue", {"A": "red", "B": "blue"})
'B'
>>> extract_choice("light blue", ["blue", "light blue"])
'B'
>>> extract_choice("B or C, hard to say") is None
True
>>> extract_choice("I think it's B, not A.")
'B'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence

from tempflex.records import LETTERS

__all__ = ["LETTERS", "extract_choice", "normalize_options"]


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_WHOLE = re.compile(r"^\W*[(\[]?\s*([A-Za-z])\s*[)\]]?\W*$")
_LEADING_UPPER = re.compile(r"^\s*[(\[]?([A-Z])\s*[).:\]](?:\s|$)")
_LEADING_LOWER = re.compile(r"^\s*[(\[]?([a-z])[)\]](?:\s|$)")
_LINE_LABEL = re.compile(r"^\s*[(\[]?([A-Z])\s*[).:\]](?:\s|$)", re.MULTILINE)
_LABEL_WORD = r"(?:(?:option|choice|letter)\s+)?"
_LETTER_AFTER = r"([(\[]?)([A-Za-z])(?=([)\].,:;!?]|\s|$))"
_STATEMENT = re.compile(
    r"\b(?:(?:answer|(?:correct|best|right|final)\s+(?:option|choice))s?"
    r"(?:\s+(?:is|would be|should be|will be|must be))?|(?:option|choice)(?=\s*:)|choose|select|pick|go with)"
    rf"\s*[:\-]?\s*{_LABEL_WORD}{_LETTER_AFTER}",
    re.IGNORECASE,
)
_ALSO = re.compile(rf"[)\]]?\s*(?:,|/|\bor\b|\band\b)\s*{_LABEL_WORD}[(\[]?([A-Z])(?![\w'\u2019])")
_MENTION = re.compile(rf"\b(?:option|choice)\s+{_LETTER_AFTER}", re.IGNORECASE)
_BRACKETED = re.compile(r"\(([A-Za-z])\)")
_BARE = re.compile(r"(?<![\w'\u2019-])([A-Z])(?![\w'\u2019-])")
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n])\s*$")
# the article "A": a lowercase word follows that is not a conjunction or verb ("A man", but not "A or B", "A is")
_ARTICLE_NEXT = re.compile(
    r"\s+(?!(?:or|and|nor|is|was|would|could|might|seems|looks|fits|matches|because|since|but|then|as|if|to)\b)[a-z]"
)

# negation around a letter: "not (A)", "isn't A", "rather than option A" / "A is wrong", "(A) can be ruled out"
_NOT_BEFORE = re.compile(
    rf"(?:\b(?:not|nor|neither|rather\s+than|instead\s+of|except)|n['\u2019]t)\s+{_LABEL_WORD}[(\[]?$", re.IGNORECASE
)
_NOT_AFTER = re.compile(
    r"[)\]]?\s*(?:(?:is|was|seems|looks)\s+(?:wrong|incorrect|false|not\s+(?:correct|right|true|it))"
    r"|(?:can|could)\s+be\s+(?:ruled\s+out|excluded|eliminated))\b",
    re.IGNORECASE,
)
# "not A or B": B is rejected with A
_NOT_LIST = re.compile(rf"(?<![\w'\u2019])[(\[]?([A-Z])[)\]]?\s*(?:,|\bor|\bnor)\s*{_LABEL_WORD}[(\[]?$")
# the same for option texts, on the lowercase word string of ``_words`` ("isn't" is "isn t")
_NOT_BEFORE_WORDS = re.compile(r" (?:not|nor|neither|t|rather than|instead of|except)$")
_NOT_AFTER_WORDS = re.compile(r"^(?:is|was|seems|looks) (?:wrong|incorrect|false|not (?:correct|right|true|it)) ")


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


def _negated(text: str, at: int) -> bool:
    """Whether the letter at ``text[at]`` is rejected: ``not A``, ``not B or A``, ``A is wrong``."""
    if _NOT_AFTER.match(text, at + 1):
        return True
    before = text[:at]
    if _NOT_BEFORE.search(before):
        return True
    listed = _NOT_LIST.search(before)
    return bool(listed) and _negated(text, listed.start(1))


def _lowercase_ok(text: str, match: re.Match) -> bool:
    """A lowercase letter counts only where it cannot be a word: ``(b)`` or at the reply's end."""
    bracket, after = match.group(1), match.group(3)
    return (bool(bracket) and after in ")]") or not text[match.end() :].strip(" .!\n")


def _labelled(text: str, pattern: re.Pattern) -> Iterator[re.Match]:
    for match in pattern.finditer(text):
        if match.group(2).isupper() or _lowercase_ok(text, match):
            yield match


def _is_option_list(text: str) -> bool:
    """The reply echoes the options: two lines open with different labels, or three letters are bracketed."""
    line_labels = {m.group(1) for m in _LINE_LABEL.finditer(text)}
    return len(line_labels) >= 2 or len({b.upper() for b in _BRACKETED.findall(text)}) >= 3


def _explicit(text: str) -> list[str]:
    """Rule 2: the opening label (unless the reply is an option list) and every answer statement."""
    found = []
    lead = _LEADING_UPPER.match(text) or _LEADING_LOWER.match(text)
    if lead and not _is_option_list(text):
        found.append(lead.group(1))
    for match in _labelled(text, _STATEMENT):
        found.append(match.group(2))
        also = _ALSO.match(text, match.end())  # "the answer is B or C": a hedge, not B
        if also and not _negated(text, also.start(1)):
            found.append(also.group(1))
    return found


def _mentions(text: str) -> list[str]:
    """Rule 3: ``option B``, ``Choice C is correct``, minus rejected ones."""
    return [m.group(2) for m in _labelled(text, _MENTION) if not _negated(text, m.start(2))]


def _bracketed(text: str) -> list[str]:
    """Rule 4: ``(C)`` anywhere, minus rejected ones."""
    return [m.group(1) for m in _BRACKETED.finditer(text) if not _negated(text, m.start(1))]


def _bare(text: str) -> list[str]:
    """Rule 5: capital letters standing alone, minus the article ``A``, the pronoun ``I`` and rejected ones."""
    return [m.group(1) for m in _BARE.finditer(text) if not _is_article(text, m) and not _negated(text, m.start(1))]


def _words(text: str) -> str:
    return " " + " ".join(_WORD.findall(text.lower())) + " "


def _affirmed(reply: str, words: str) -> bool:
    """Whether the option's words occur in the reply at least once without a negation around them."""
    start = reply.find(words)
    while start >= 0:
        end = start + len(words)
        if not _NOT_BEFORE_WORDS.search(reply[:start]) and not _NOT_AFTER_WORDS.match(reply[end:]):
            return True
        start = reply.find(words, start + 1)
    return False


def _option_text(text: str, options: dict[str, str]) -> str | bool | None:
    """Rule 6: the one option whose text the reply is, or contains (not negated)."""
    reply = _words(text)
    texts = {letter: _words(option) for letter, option in options.items() if option.strip()}
    exact = [letter for letter, words in texts.items() if words == reply]
    if len(exact) == 1:
        return exact[0]
    hits = [letter for letter, words in texts.items() if words.strip() and _affirmed(reply, words)]
    hits = [a for a in hits if not any(a != b and texts[a] in texts[b] for b in hits)]
    if not hits:
        return False
    return hits[0] if len(hits) == 1 else None


_RULES: tuple[Callable[[str], list[str]], ...] = (_explicit, _mentions, _bracketed, _bare)


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
    for rule in _RULES:
        result = _one(rule(stripped), valid)
        if result is not False:
            return result
    if choices:
        result = _option_text(stripped, choices)
        if result is not False:
            return result
    return None


def _is_article(text: str, match: re.Match) -> bool:
    """``A``/``I`` used as a word: the article opening a sentence (``A man ...``) or the pronoun (``I think``).

    ``A`` before ``or``, ``and``, ``is``, ``because``, ... stays a letter: ``A or B``, ``A is right``.
    """
    letter, rest = match.group(1), text[match.end() :]
    if letter == "I":
        return bool(re.match(r"\s+[a-z]|\s*['\u2019]", rest))
    if letter != "A" or not _SENTENCE_START.search(text[: match.start()]):
        return False
    return bool(_ARTICLE_NEXT.match(rest))
