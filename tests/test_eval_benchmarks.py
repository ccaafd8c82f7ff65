"""Each benchmark reader on a small fixture in the benchmark's real file format; scores of given replies are
checked against hand-computed values."""

import base64
import csv
import io
import json

import pytest
from PIL import Image

from setup_parts import require
from tempflex.evaluation.benchmarks import BENCHMARKS, score_item
from tempflex.evaluation.items import summarise
from video_files import encode_video


def score(name, data, replies, frames=None):
    items = BENCHMARKS[name].load(data, frames)
    scores = {item.id: score_item(item, replies.get(item.id))[0] for item in items}
    return items, summarise(items, scores)


VIDEOMME_ROWS = [
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://example.invalid/v1", "videoID": "clipA", "question_id": "001-1", "task_type": "Counting Problem",
     "question": "How many red balls appear?", "options": ["A. 1", "B. 2", "C. 3", "D. 4"], "answer": "C"},
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://example.invalid/v1", "videoID": "clipA", "question_id": "001-2", "task_type": "Object Recognition",
     "question": "What colour is the car?", "options": ["A. red", "B. blue", "C. green", "D. white"], "answer": "B"},
    {"video_id": "301", "duration": "long", "domain": "Sports", "sub_category": "Football",
     "url": "https://example.invalid/v2", "videoID": "clipB", "question_id": "301-1", "task_type": "Action Reasoning",
     "question": "Why does the crowd cheer?", "options": ["A. a goal", "B. a foul", "C. rain", "D. a song"],
     "answer": "A"},
]  # fmt: skip


def videomme_folder(tmp_path, suffix=".json"):
    (tmp_path / "videomme").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "subtitle").mkdir()
    encode_video(tmp_path / "data" / "clipA.mp4", 40, fps=10)  # 4 s
    if suffix == ".parquet":
        pa = require("pyarrow", "dev")  # the dev extra installs it
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(VIDEOMME_ROWS), tmp_path / "videomme" / "test-00000-of-00001.parquet")
    else:
        (tmp_path / "videomme" / "test.json").write_text(json.dumps(VIDEOMME_ROWS))
    return tmp_path


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_videomme(tmp_path, suffix):
    data = videomme_folder(tmp_path, suffix)
    replies = {"001-1": "C", "001-2": "The answer is A.", "301-1": "(A) a goal"}
    items, result = score("videomme", data, replies)
    assert result["overall"] == pytest.approx(200 / 3, abs=0.01)
    assert result["by_duration"] == {"long": 100.0, "short": 50.0}
    video = items[0].content[0]
    assert video["nframes"] == video["max_frames"] == 128  # the paper's test-time frame count
    assert items[0].content[1]["text"].endswith("A. 1\nB. 2\nC. 3\nD. 4\nThe best answer is:")


def test_videomme_subtitles_at_sampled_frames(tmp_path):
    data = videomme_folder(tmp_path)
    (data / "subtitle" / "clipA.srt").write_text(
        "1\n00:00:00,000 --> 00:00:00,400\nbefore any frame\n\n"
        "2\n00:00:00,900 --> 00:00:01,100\nat the first frame\n\n"
        "3\n00:00:03,500 --> 00:00:04,000\nat the last frame\n"
    )
    items, _ = score("videomme-sub", data, {}, frames=2)  # 2 frames of a 4 s clip: t = 1 s and 3 s
    text = items[0].content[1]["text"]
    assert text.startswith("This video's subtitles are listed below:\nat the first frame\n")
    assert "before any frame" not in text and "at the last frame" not in text
    items, _ = score("videomme-sub", data, {}, frames=4)  # t = 0.5, 1.5, 2.5, 3.5
    assert "at the last frame" in items[0].content[1]["text"]


def test_tempcompass(tmp_path):
    (tmp_path / "questions").mkdir()
    questions = {
        "1001": {"direction": [{"question": "Which way does the car move?\nA. left\nB. right", "answer": "B. right"}],
                 "speed": [{"question": "How fast?\nA. slow\nB. fast\nC. constant", "answer": "A. slow"}]},
        "1002": {"direction": [{"question": "Which way does the bird fly?\nA. up\nB. down", "answer": "A. up"}]},
    }  # fmt: skip
    (tmp_path / "questions" / "multi-choice.json").write_text(json.dumps(questions))
    replies = {"1001/direction/0": "right", "1001/speed/0": "B", "1002/direction/0": "A. up"}
    items, result = score("tempcompass", tmp_path, replies)
    assert result["overall"] == pytest.approx(66.67)
    assert result["by_dimension"] == {"direction": 100.0, "speed": 0.0}
    assert items[1].options == {"A": "slow", "B": "fast", "C": "constant"}


def test_mlvu_macro_average(tmp_path):
    (tmp_path / "json").mkdir()
    plot = [{"video": f"movie{i}.mp4", "duration": 300, "question": f"Q{i}?", "candidates": ["cat", "dog", "fox"],
             "answer": "dog", "question_type": "plotQA"} for i in range(3)]  # fmt: skip
    count = [{"video": "count.mp4", "duration": 200, "question": "How many?", "candidates": ["1", "2", "3", "4"],
              "answer": "4", "question_type": "count"}]  # fmt: skip
    (tmp_path / "json" / "1_plotQA.json").write_text(json.dumps(plot))
    (tmp_path / "json" / "4_count.json").write_text(json.dumps(count))
    (tmp_path / "json" / "8_sub_scene.json").write_text("[]")  # generation task: not read
    replies = {"plotQA/0": "B", "plotQA/1": "dog", "plotQA/2": "A", "count/0": "D"}
    items, result = score("mlvu", tmp_path, replies)
    assert result["overall"] == 75.0  # 3 of 4 questions
    assert result["by_task"] == {"count": 100.0, "plotQA": 66.67}
    assert items[0].content[0]["video"].endswith("video/1_plotQA/movie0.mp4")


def image_b64(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_tsv(path, header, rows):
    """As pandas' ``to_csv(sep="\\t")`` writes it (VLMEvalKit's files): fields with newlines are quoted."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_mmbench_circular_with_copies_in_the_file(tmp_path):
    header = ["index", "question", "hint", "A", "B", "C", "answer", "category", "l2-category", "image"]
    red = image_b64("red")
    rows = [  # question 7 and its two rotations (g_index 7); question 8 without copies
        [7, "Colour?", "nan", "red", "blue", "green", "A", "attribute", "perception", red],
        [1000007, "Colour?", "nan", "blue", "green", "red", "C", "attribute", "perception", "7"],
        [2000007, "Colour?", "nan", "green", "red", "blue", "B", "attribute", "perception", "7"],
        [8, "Shape?", "It is round", "square", "circle", "nan", "B", "shape", "perception", red],
    ]
    data = write_tsv(tmp_path / "MMBench_DEV_EN.tsv", header, rows)
    all_right = {"7": "A", "1000007": "C", "2000007": "B", "8": "circle"}
    _, result = score("mmbench", data, all_right)
    assert result == {
        "overall": 100.0, "count": 2, "copies": 4,
        "by_category": {"attribute": 100.0, "shape": 100.0}, "by_l2_category": {"perception": 100.0},
    }  # fmt: skip
    one_rotation_wrong = {**all_right, "2000007": "A"}  # 3 of 4 rows right, but question 7 fails
    _, result = score("mmbench", data, one_rotation_wrong)
    assert result["overall"] == 50.0
    items = BENCHMARKS["mmbench"].load(data, None)
    assert items[3].content[1]["text"].startswith("Hint: It is round\nQuestion: Shape?\nOptions:\nA. square\nB. circle")
    assert items[1].content[0]["image"] == items[0].content[0]["image"]  # the reference "7" resolved


def test_mmbench_rotations_made_when_absent(tmp_path):
    header = ["index", "question", "A", "B", "C", "D", "answer", "image"]
    data = write_tsv(tmp_path / "mm.tsv", header, [[5, "Pick x", "w", "x", "y", "z", "B", image_b64("blue")]])
    items = BENCHMARKS["mmbench"].load(data, None)
    assert [(i.id, i.answer, i.options["A"]) for i in items] == [
        ("5", "B", "w"), ("5@1", "A", "x"), ("5@2", "D", "y"), ("5@3", "C", "z")
    ]  # fmt: skip
    replies = {"5": "x", "5@1": "x", "5@2": "x", "5@3": "B"}  # the text is right 3 times, the letter B once: wrong
    _, result = score("mmbench", data, replies)
    assert result["overall"] == 0.0 and result["copies"] == 4


def test_mmstar_inline_options_and_ai2d(tmp_path):
    header = ["index", "question", "answer", "category", "l2_category", "image"]
    rows = [
        [0, "Which animal is shown?\nOptions: A: cat, B: dog, C: horse, D: cow", "C", "coarse perception", "x",
         image_b64("green")],
        [1, "What is the weather?\nOptions: A: sunny, B: rainy, C: snowy, D: foggy", "A", "fine-grained", "y",
         image_b64("white")],
    ]  # fmt: skip
    items, result = score("mmstar", write_tsv(tmp_path / "MMStar.tsv", header, rows), {"0": "C. horse", "1": "B"})
    assert items[0].options == {"A": "cat", "B": "dog", "C": "horse", "D": "cow"}
    assert result["overall"] == 50.0 and result["by_category"] == {"coarse perception": 100.0, "fine-grained": 0.0}
    header = ["index", "question", "A", "B", "C", "D", "answer", "image_path"]
    Image.new("RGB", (8, 8)).save(tmp_path / "d.png")
    rows = [[i, f"q{i}", "a", "b", "c", "d", "ABCD"[i], "d.png"] for i in range(4)]
    _, result = score("ai2d", write_tsv(tmp_path / "AI2D_TEST.tsv", header, rows), {"0": "A", "1": "B", "2": "A"})
    assert result["overall"] == 50.0  # 2 right, 1 wrong, 1 without a reply


def test_textvqa(tmp_path):
    data = {"dataset_name": "textvqa", "data": [
        {"question_id": 1, "question": "What brand?", "image_id": "abc", "answers": ["nike"] * 3 + ["adidas"] * 7},
        {"question_id": 2, "question": "What number?", "image_id": "def", "answers": ["12"] * 10},
    ]}  # fmt: skip
    (tmp_path / "TextVQA_0.5.1_val.json").write_text(json.dumps(data))
    items, result = score("textvqa", tmp_path, {"1": "Nike", "2": "twelve"})
    # "nike" matches 3 of 10: 0.9; "twelve" is not normalised to 12 (only zero..ten are): 0
    assert result["overall"] == 45.0
    assert items[0].content[0]["image"].endswith("train_images/abc.jpg")


def test_docvqa_anls(tmp_path):
    data = {"dataset_name": "docvqa", "dataset_split": "val", "data": [
        {"questionId": 11, "question": "What is the date?", "image": "documents/a.png", "docId": 1,
         "answers": ["1/8/93", "January 8, 1993"]},
        {"questionId": 12, "question": "Who signed?", "image": "documents/b.png", "docId": 2,
         "answers": ["T.F. Riehl"]},
        {"questionId": 13, "question": "Total?", "image": "documents/c.png", "docId": 3, "answers": ["$ 975.00"]},
    ]}  # fmt: skip
    (tmp_path / "val_v1.0.json").write_text(json.dumps(data))
    replies = {"11": "january 8, 1993", "12": "T. F. Riehl", "13": "1000"}
    _, result = score("docvqa", tmp_path, replies)
    # 1.0 (exact after lowercasing); 1 - 1/11 (one inserted space over 11 characters); 0 (NL >= 0.5)
    assert result["overall"] == pytest.approx(100 * (1 + (1 - 1 / 11)) / 3, abs=0.01)


def test_bad_record_names_the_file_and_row(tmp_path):
    rows = [{**VIDEOMME_ROWS[0], "answer": "E"}]
    (tmp_path / "videomme").mkdir()
    (tmp_path / "videomme" / "t.json").write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=r"t\.json, row 1 \(question '001-1'\): answer 'E'"):
        BENCHMARKS["videomme"].load(tmp_path, None)
