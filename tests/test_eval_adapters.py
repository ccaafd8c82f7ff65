"""The VLMEvalKit adapter on the tiny model (lmms-eval's is tested through its CLI in test_eval_lmms.py)."""

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
