"""The multiple-choice reply table: real-looking model replies with the option letter a careful reader would take.

Used by ``tests/test_eval_scoring.py`` (``extract_choice`` must get every row) and by
``benchmarks/extraction_agreement.py`` (how many rows lmms-eval's and VLMEvalKit's extractors get). ``None``
means the reply gives no answer (a hedge, a refusal, an echo of the options): an extractor must not pick a letter.
"""

from __future__ import annotations

COLOURS: dict[str, str] = {"A": "red", "B": "blue", "C": "light blue", "D": "green"}

# (reply, expected letter or None); the options are COLOURS
REPLIES: list[tuple[str, str | None]] = [
    ("B", "B"),
    ("b", "B"),
    ("(B)", "B"),
    ("(b)", "B"),
    ("B.", "B"),
    ("[C]", "C"),
    (" D\n", "D"),
    ("B. blue", "B"),
    ("(B) blue", "B"),
    ("B) blue", "B"),
    ("B: blue", "B"),
    ("b) blue", "B"),
    ("Answer: B", "B"),
    ("Answer: b", "B"),
    ("answer:B", "B"),
    ("The answer is B) blue", "B"),
    ("The answer is (C).", "C"),
    ("The correct answer is D. The ball is green.", "D"),
    ("The best option is A", "A"),
    ("Option C is correct.", "C"),
    ("I would choose option B because the sky is blue.", "B"),
    ("**B**", "B"),
    ("**Answer:** C", "C"),
    ("Looking at the frames, the ball turns green, so (D) fits.", "D"),
    ("I think B is right.", "B"),
    ("After watching closely, B", "B"),
    ("blue", "B"),
    ("Blue.", "B"),
    ("light blue", "C"),
    ("The square is light blue.", "C"),
    ("It is red", "A"),
    ("<think>Maybe A? No, the square is blue.</think>B", "B"),
    ("<think>A or C</think>\nThe answer is C.", "C"),
    ("the frames show motion. </think> D", "D"),
    ("<think>Let me look at the first frame, then A, then", None),
    ("B or C, hard to say", None),
    ("Answer: B. Wait, actually the answer is C.", None),
    ("A man throws a ball.", None),
    ("The answer is a dog", None),
    ("I don't know.", None),
    ("", None),
    ("E", None),
    ("red and green stripes", None),
    ("The answer is E.", None),
    ("Answer: (a)", "A"),
    ("the answer is a.", "A"),
    ("Choice: D", "D"),
    # an explicit answer, then discussion of the other options
    ("Answer: B\nOption A is wrong because the ball is not red.", "B"),
    ("The answer is C.\nA and B do not match the colour of the square.", "C"),
    ("**Answer:** (D)\n\n(A) is red and (B) is blue, so neither fits.", "D"),
    ("B. blue\nOption C would need a lighter shade.", "B"),
    ("A. red\nB. blue\nC. light blue\nD. green\nAnswer: D", "D"),
    ("Option A is wrong; option C is right.", "C"),
    # "X, not Y"
    ("I think it's B, not A.", "B"),
    ("It's C rather than D.", "C"),
    ("Definitely (B), not (A).", "B"),
    ("I'd go with D, not B.", "D"),
    ("B is correct; A is wrong because the ball is blue.", "B"),
    ("It's blue, not red.", "B"),
    ("It is light blue, not blue.", "C"),
    # "not X; it is Y"
    ("The correct answer is not B; it is C.", "C"),
    ("The answer isn't A; it's C.", "C"),
    ("Not C. The answer is D.", "D"),
    ("It's not A or B, so C.", "C"),
    ("The answer is not A.", None),
    # hedges, self-corrections and echoed options: no answer
    ("Either B or C.", None),
    ("B and C are both plausible.", None),
    ("It could be A or B.", None),
    ("A or B, I am not sure.", None),
    ("Answer: B or C", None),
    ("The answer is (B) or (C).", None),
    ("Neither A nor B; it is C or D.", None),
    ("Not A, but B or C.", None),
    ("B. Actually, the answer is C.", None),
    ("A. red\nB. blue\nC. light blue\nD. green", None),
    ("(A) red (B) blue (C) light blue (D) green", None),
]
