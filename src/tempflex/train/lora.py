"""LoRA on the language model through PEFT: inject adapters, train only them, merge them back for saving.

``apply_lora(model, r=8)`` puts LoRA adapters (PEFT's ``inject_adapter_in_model``) on the LLM's attention and
MLP projections and freezes the LLM's own weights; the other parts keep what the stage says (TFF and the
merger may still train fully). ``merge_lora(model)`` folds the adapters into the weights and removes them,
so the saved model is a plain TempFlex model that ``from_pretrained`` loads without PEFT.

Command: ``tempflex train --stage 4 --model DIR --data DATA --output OUT --lora 16``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["DEFAULT_TARGETS", "apply_lora", "merge_lora"]

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The projection layers of Qwen3 and Gemma3 decoder layers."""


def _adapter_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, layer) for name, layer in module.named_modules() if isinstance(layer, BaseTunerLayer)]


def apply_lora(
    model: nn.Module,
    r: int = 8,
    alpha: int | None = None,
    dropout: float = 0.0,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
) -> None:
    """Add LoRA adapters of rank ``r`` to ``model.language_model`` and train only them there."""
    from peft import LoraConfig, inject_adapter_in_model

    if not any(p.requires_grad for p in model.language_model.parameters()):
        raise ValueError("LoRA adapts the language model, which this stage keeps frozen")
    config = LoraConfig(r=r, lora_alpha=alpha or 2 * r, lora_dropout=dropout, target_modules=list(target_modules))
    inject_adapter_in_model(config, model.language_model)
    adapters = {id(p) for _, layer in _adapter_layers(model.language_model) for p in _adapter_parameters(layer)}
    for parameter in model.language_model.parameters():
        parameter.requires_grad_(id(parameter) in adapters)


def _adapter_parameters(layer: nn.Module) -> list[nn.Parameter]:
    return [p for name in ("lora_A", "lora_B") for p in getattr(layer, name).parameters()]


def merge_lora(model: nn.Module) -> None:
    """Fold every adapter into its base weight and put the base layer back in its place."""
    for name, layer in _adapter_layers(model.language_model):
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.language_model.get_submodule(parent_name) if parent_name else model.language_model
        setattr(parent, child, layer.get_base_layer())
