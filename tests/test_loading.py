"""``tempflex.load``: presets, saved folders and (vision, LLM) pairs; dtype as from_pretrained gives it; device;
end of turn in the generation config; folders that transformers loads without ``import tempflex``."""

import json
import subprocess
import sys

import pytest
import torch

from tempflex import load
from tempflex.loading import parse_dtype, resolve_device


def test_a_preset_stops_at_its_end_of_turn_and_picks_the_cpu_here():
    model, processor = load("tiny", device="auto")
    assert model.device == resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    eos = model.generation_config.eos_token_id
    assert processor.tokenizer.convert_ids_to_tokens(eos) == ["<|im_end|>"]
    assert processor.end_of_turn_token == "<|im_end|>"


def test_a_bfloat16_preset_keeps_float32_rotary_buffers_as_from_pretrained_does():
    model, _ = load("tiny", dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {b.dtype for b in model.language_model.model.rotary_emb.buffers()} == {torch.float32}


def test_config_overrides_reach_the_model_and_the_processor():
    model, processor = load("tiny", max_frames_to_llm=2, fusion_paths=["local"])
    assert model.config.max_frames_to_llm == processor.max_frames_to_llm == 2
    assert model.config.fusion_paths == ["local"]


def test_a_saved_folder_round_trips_in_bfloat16(tmp_path):
    model, processor = load("tiny", dtype=torch.bfloat16)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded, reloaded_processor = load(tmp_path)
    assert reloaded.dtype == torch.bfloat16
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(model.eval()(input_ids=ids).logits, reloaded.eval()(input_ids=ids).logits)
    assert reloaded.generation_config.eos_token_id == model.generation_config.eos_token_id
    assert reloaded_processor.end_of_turn_token == "<|im_end|>"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tinyy", "neither a folder, a hub id .owner/name. nor a preset"),
        ("./missing/folder", "neither a folder"),
        (("a", "b", "c"), "two checkpoints, got 3"),
        ("gemma3-4b", "preset 'gemma3-4b' has no offline tokenizer"),
    ],
)
def test_a_bad_spec_is_named(spec, message):
    with pytest.raises(ValueError, match=message):
        load(spec)


def test_dtype_names():
    assert [parse_dtype(n) for n in ("bfloat16", "bf16", "fp32", "float16", "auto", None)] == [
        torch.bfloat16, torch.bfloat16, torch.float32, torch.float16, None, None,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="dtype 'half8' is not one of"):
        parse_dtype("half8")


LOAD_WITHOUT_IMPORT = """
import sys
from transformers import AutoModelForImageTextToText, AutoProcessor
folder = sys.argv[1]
try:
    AutoModelForImageTextToText.from_pretrained(folder)
except ValueError as error:
    print("refused:", str(error).splitlines()[0])
model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
print(type(model).__module__, type(model).__name__, type(processor).__name__)
"""


def test_a_saved_folder_loads_in_a_fresh_process_without_import_tempflex(tmp_path):
    model, processor = load("tiny")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (
        json.loads((tmp_path / "config.json").read_text())["auto_map"]["AutoConfig"] == "tempflex_auto.TempFlexConfig"
    )
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_IMPORT, str(tmp_path)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    refusal = next(line for line in lines if "refused:" in line)  # after transformers' own prompt, unanswered
    assert "contains custom code" in refusal.split("refused:")[1]  # not transformers' "update Transformers"
    assert lines[-1] == "tempflex.modeling TempFlexForConditionalGeneration TempFlexProcessor"
