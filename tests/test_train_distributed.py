"""Every engine through torchrun (2 CPU processes over gloo) on data where one process draws text-only samples while
the other draws videos: DDP, DDP + gradient checkpointing, DeepSpeed ZeRO-2 and FSDP2 each finish, name themselves
in their first log line, and end with the weights of one process training on the same global batch (1e-5).
Also: FSDP2 really shards (DTensor parameters, half of every sharded tensor per process), and bf16 autocast over
fp32 masters moves every trained element of a bf16 folder in 3 steps where pure bf16 leaves most of them."""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from PIL import Image

from setup_parts import missing
from tempflex import TempFlexForConditionalGeneration
from video_files import encode_video

STAGE = """name: mixed-test
trainable: {vision_tower: 1.0e-4, temporal_fusion: 1.0e-4, merger: 1.0e-4, language_model: 1.0e-4}
use_temporal_fusion: true
global_batch_size: 2
lr_scheduler: constant
warmup_ratio: 0.0
max_frames: 12
"""
"""Every module trains, TFF on, rates high enough that a wrong reduction shows (Adam moves each element ~1e-4 a step),
and a recipe global batch of 2: 1 process x 2 samples, or 2 processes x 1 sample, with no accumulation flag."""

ENGINES = {
    "ddp": ([], "distributed: ddp, 2 processes, gloo"),
    "ddp+checkpointing": (["--gradient-checkpointing"], "distributed: ddp, 2 processes, gloo"),
    "zero2": (["--deepspeed", "zero2"], "distributed: deepspeed zero-2, 2 processes, gloo"),
    "fsdp2": (["--fsdp"], "distributed: fsdp2, 2 processes, gloo"),
}


def conversation(question, answer):
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """In order: text, video, two images of different sizes, video of another shape, text, video. Read in order,
    process 0 gets samples 0, 2, 4 (text, images, text) and process 1 gets 1, 3, 5 (videos): different modules
    run, a different number of vision buckets and TFF shape groups on each."""
    folder = tmp_path_factory.mktemp("mixed")
    encode_video(folder / "a.mp4", num_frames=12, fps=4)
    encode_video(folder / "b.mp4", num_frames=8, fps=4, size=(96, 64))
    Image.new("RGB", (64, 96), (200, 40, 40)).save(folder / "wide.png")
    Image.new("RGB", (128, 64), (40, 200, 40)).save(folder / "tall.png")
    records = [
        {"id": "t0", "conversations": conversation("Say hello.", "Hello there, friend.")},
        {"id": "v0", "video": "a.mp4", "conversations": conversation("<video>\nWhat moves?", "Blocks flash.")},
        {"id": "i0", "image": ["wide.png", "tall.png"],
         "conversations": conversation("<image> and <image>: colours?", "Red, then green.")},
        {"id": "v1", "video": "b.mp4", "conversations": conversation("<video>\nHow many?", "Several blocks.")},
        {"id": "t1", "conversations": conversation("Count to three.", "One, two, three.")},
        {"id": "v2", "video": "b.mp4", "conversations": conversation("<video>\nDescribe it.", "Squares blink.")},
    ]  # fmt: skip
    (folder / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "stage.yaml").write_text(STAGE)
    return folder


def torchrun(processes, arguments, timeout=300):
    """``python -m torch.distributed.run ... -m tempflex.train ARGS`` with one thread per process."""
    with socket.socket() as probe:  # a free port: parallel runs of the suite must not collide
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "DS_ACCELERATOR": "cpu"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    command += ["--master_port", str(port), "-m", "tempflex.train", *arguments]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def common(folder, output):
    return ["--stage", str(folder / "stage.yaml"), "--model", "tiny", "--data", str(folder / "mixed.jsonl"),
            "--max-steps", "3", "--no-shuffle", "--output", str(output)]  # fmt: skip


@pytest.fixture(scope="module")
def one_process(mixed):
    """The reference: one process, 2 samples a step (the same global batch), 3 steps."""
    result = torchrun(1, [*common(mixed, mixed / "one"), "--batch-size", "2"])
    assert "distributed: none, 1 process, gloo; float32 weights" in result.stderr  # torchrun starts gloo
    return TempFlexForConditionalGeneration.from_pretrained(mixed / "one").state_dict()


@pytest.mark.parametrize("engine", list(ENGINES))
def test_two_processes_on_mixed_modalities_equal_one_process(mixed, one_process, engine):
    flags, engine_line = ENGINES[engine]
    if engine == "zero2" and importlib.util.find_spec("deepspeed") is None:
        missing("deepspeed", "DeepSpeed")
    output = mixed / engine
    result = torchrun(2, [*common(mixed, output), "--batch-size", "1", *flags])
    assert engine_line in result.stderr
    two = TempFlexForConditionalGeneration.from_pretrained(output).state_dict()
    from transformers import set_seed

    from tempflex.loading import load

    set_seed(0)  # as the CLI does before building the preset: the initial weights of both runs
    start = load("tiny")[0].state_dict()
    differences = {k: (one_process[k] - two[k]).abs().max().item() for k in one_process}
    worst = max(differences, key=differences.get)
    assert differences[worst] <= 1e-5, (worst, differences[worst])
    for module in ("vision_tower.", "temporal_fusion.", "merger.", "language_model."):  # every module trained
        assert any(not torch.equal(two[k], start[k]) for k in two if k.startswith(module)), module
    steps = [json.loads(line) for line in (output / "loss.jsonl").read_text().splitlines()]
    assert [line["step"] for line in steps if "loss" in line] == [1, 2, 3]
    assert all(line["lr/language_model"] == 1e-4 and line["tokens_per_second"] > 0 for line in steps if "loss" in line)


PROBE = """
import json, os, sys
import torch
from torch.distributed.tensor import DTensor
from transformers import set_seed
from tempflex.train.engines import load_for_fsdp2

set_seed(0)
model, _ = load_for_fsdp2("tiny")
shards = {name: (isinstance(p, DTensor), p.to_local().numel() if isinstance(p, DTensor) else p.numel(), p.numel())
          for name, p in model.named_parameters()}
with open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.json"), "w") as out:
    json.dump(shards, out)
"""


def test_fsdp2_shards_every_parameter_across_the_processes(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    port_probe = socket.socket()
    port_probe.bind(("127.0.0.1", 0))
    port = port_probe.getsockname()[1]
    port_probe.close()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    result = subprocess.run([*command, str(tmp_path / "probe.py"), str(tmp_path)], env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(is_dtensor for rank in ranks for is_dtensor, _, _ in rank.values())  # every parameter sharded
    for name, (_, local0, full) in ranks[0].items():  # dim 0 split in two: the halves add up to the whole
        assert local0 + ranks[1][name][1] == full, name
    held = sum(local for _, local, _ in ranks[0].values()) / sum(full for _, _, full in ranks[0].values())
    assert 0.45 <= held <= 0.55  # each process holds about half of the model


def test_bf16_autocast_over_fp32_masters_moves_every_trained_element(tmp_path):
    """A folder saved in bf16, 3 steps of stage 2 at its real rates (2e-6 / 1e-5): ``--bf16`` trains fp32 masters
    (every element of the merger and LM layers moves, and all but 3 of 117k in the vision layers: attention
    projections whose bf16-autocast gradient is far below Adam's eps, so their 2e-8 update is under the fp32 spacing
    of the weight); ``--dtype bfloat16`` (pure bf16, what the folder gave before) loses most updates to rounding
    (measured: 2% of vision, 16% of merger and LM elements move)."""
    from tempflex.cli import main
    from tempflex.loading import load

    torch.manual_seed(0)
    model, processor = load("tiny", dtype=torch.bfloat16)
    model.save_pretrained(tmp_path / "bf16")
    processor.save_pretrained(tmp_path / "bf16")
    Image.new("RGB", (64, 96), (200, 40, 40)).save(tmp_path / "red.png")
    record = {"id": "r", "image": "red.png", "conversations": conversation("<image>\nColour?", "Red, clearly red.")}
    (tmp_path / "d.jsonl").write_text(json.dumps(record) + "\n")
    base = ["train", "--stage", "2", "--model", str(tmp_path / "bf16"), "--data", str(tmp_path / "d.jsonl"),
            "--max-steps", "3", "--grad-accum", "1"]  # fmt: skip
    assert main([*base, "--output", str(tmp_path / "mixed"), "--bf16"]) == 0
    assert main([*base, "--output", str(tmp_path / "pure"), "--dtype", "bfloat16"]) == 0
    start = {k: v.float() for k, v in model.state_dict().items()}
    mixed = TempFlexForConditionalGeneration.from_pretrained(tmp_path / "mixed").state_dict()
    pure = TempFlexForConditionalGeneration.from_pretrained(tmp_path / "pure").state_dict()
    assert all(v.dtype == torch.float32 for v in mixed.values())  # the fp32 masters are what is saved

    def moved(weights, prefix):
        keys = [k for k in start if k.startswith(prefix) and k.endswith("weight") and start[k].dim() == 2]
        changed = sum(int((weights[k].float() != start[k]).sum()) for k in keys)
        return changed / sum(start[k].numel() for k in keys)

    for prefix, share in (("vision_tower.encoder_model.encoder.layers.", 0.9999), ("merger.", 1.0),
                          ("language_model.model.layers.", 1.0)):  # fmt: skip
        assert moved(mixed, prefix) >= share, prefix
        assert moved(pure, prefix) < 0.3, prefix
