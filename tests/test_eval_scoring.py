"""Answer extraction on real-looking model replies, and the open-answer scores against hand-computed values."""

import pytest

from reply_table import COLOURS, REPLIES
from tempflex.evaluation.answers import extract_choice
from tempflex.evaluation.metrics import anls, exact_match, normalize_vqa_answer, vqa_accuracy


@pytest.mark.parametrize(("reply", "expected"), REPLIES)
def test_extract_choice(reply, expected):
    assert extract_choice(reply, COLOURS) == expected


def test_table_is_large_enough():
    assert len(REPLIES) >= 70
    assert len({reply for reply, _ in REPLIES}) == len(REPLIES)  # no duplicates


def test_letters_without_options():
    assert extract_choice("The answer is (E)") == "E"  # A-E valid without options
    assert extract_choice("F") is None
    assert extract_choice("F", letters="ABCDEF") == "F"


# ten human answers in which "4" occurs four times, "5" three, "6" twice, "7" once (spelt in several ways)
HUMANS = ["4", "four", "Four", "4.", "5", "five", "5", "six", "6", "seven"]


@pytest.mark.parametrize(
    ("prediction", "expected"),
    # k matches: the 10 leave-one-out scores are min(1, k/3) for the 10 - k non-matching answers left out and
    # min(1, (k-1)/3) for the k matching ones; k=1: 9*(1/3)/10 = 0.3, k=2: (8*2/3 + 2*1/3)/10 = 0.6,
    # k=3: (7*1 + 3*2/3)/10 = 0.9, k=4: 1.0
    [("8", 0.0), ("Seven", 0.3), ("6", 0.6), ("five.", 0.9), ("the four", 1.0)],
)
def test_vqa_accuracy_by_match_count(prediction, expected):
    assert vqa_accuracy(prediction, HUMANS) == pytest.approx(expected)


def test_vqa_normalisation():
    assert normalize_vqa_answer("Dont!") == "don't"
    assert normalize_vqa_answer("3.5 kg") == "3.5 kg"
    assert normalize_vqa_answer("yes.") == "yes"
    assert normalize_vqa_answer("A Coca-Cola") == "coca cola"


def test_anls_hand_computed():
    assert anls("receipt", ["Receipt"]) == 1.0
    assert anls("recieve", ["receive"]) == pytest.approx(1 - 2 / 7)  # two substitutions over 7 characters
    assert anls("abcd", ["wxyz"]) == 0.0  # NL = 1 >= 0.5
    assert anls("abcdef", ["abcxyz"]) == 0.0  # NL = 3/6 = 0.5: at the threshold scores 0
    assert anls("abcdefg", ["abcdxyz", "abcdefh"]) == pytest.approx(1 - 1 / 7)  # the best answer counts
    assert anls("  New   York ", ["new york"]) == 1.0


def test_exact_match():
    assert exact_match("Paris.", ["paris"]) == 1.0
    assert exact_match("Paris, France", ["paris"]) == 0.0
