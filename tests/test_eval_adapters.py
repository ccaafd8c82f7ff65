"""The harness adapters on the tiny model: VLMEvalKit's documented interface, and lmms-eval's real package
(skipped where lmms-eval is not installed; it is not a tempflex dependency)."""

import pytest
from PIL import Image

from tempflex.evaluation.vlmevalkit import TempFlexVLMEval, message_to_content
from video_files import encode_video


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    Image.new("RGB", (64, 48), "red").save(folder / "red.png")
    encode_video(folder / "clip.mp4", 20, fps=10)
    return folder


def test_vlmevalkit_message_forms(media):
    image, video = str(media / "red.png"), str(media / "clip.mp4")
    assert message_to_content([image, "What colour?"]) == [
        {"type": "image", "image": image},
        {"type": "text", "text": "What colour?"},
    ]
    assert message_to_content([{"type": "video", "value": video}], nframe=8, fps=2.0) == [
        {"type": "video", "video": video, "fps": 2.0, "max_frames": 8}
    ]
    with pytest.raises(ValueError, match="'audio'"):
        message_to_content([{"type": "audio", "value": "a.wav"}])


def test_vlmevalkit_model_generates(media):
    model = TempFlexVLMEval(model_path="tiny", nframe=4, max_new_tokens=3)
    assert model.INTERLEAVE and model.VIDEO_LLM and not model.use_custom_prompt("MMStar")
    image_reply = model.generate([{"type": "image", "value": str(media / "red.png")}, {"type": "text", "value": "Hi"}])
    model.nframe = 6  # as VLMEvalKit's video datasets set it
    video_reply = model.generate([str(media / "clip.mp4"), "What happens?"], dataset="Video-MME")
    assert isinstance(image_reply, str) and isinstance(video_reply, str)


def test_lmms_eval_plugin(media):
    pytest.importorskip("lmms_eval")
    from lmms_eval.api.instance import Instance
    from lmms_eval.models import get_model

    cls = get_model("tempflex")  # found through the lmms_eval.models entry point of our package
    model = cls.create_from_arg_string("pretrained=tiny,nframes=4,max_new_tokens=4")
    docs = [{"image": Image.open(media / "red.png")}, {"video": str(media / "clip.mp4")}]
    model.task_dict = {"toy": {"test": docs}}

    def to_visual(doc):
        return [doc.get("image") or doc.get("video")]

    def request(kind, second, doc_id):
        args = ("What is shown?", second, to_visual, doc_id, "toy", "test")
        return Instance(request_type=kind, arguments=args, idx=0, metadata={"task": "toy", "doc_id": doc_id,
                                                                             "repeats": 1})  # fmt: skip

    replies = model.generate_until([request("generate_until", {"max_new_tokens": 4}, 0),
                                    request("generate_until", {"until": ["\n"]}, 1)])  # fmt: skip
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies) and "\n" not in replies[1]
    greedy = model.generate_until([request("generate_until", {"max_new_tokens": 1}, 0)])[0]
    token_ids = model.processor.tokenizer.encode(greedy, add_special_tokens=False)
    other = model.processor.tokenizer.decode([(token_ids[0] + 7) % 500 + 100])
    (greedy_ll, greedy_flag), (other_ll, other_flag) = model.loglikelihood(
        [request("loglikelihood", greedy, 0), request("loglikelihood", other, 0)]
    )
    assert greedy_flag and not other_flag and other_ll < greedy_ll <= 0
