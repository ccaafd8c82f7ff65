"""Jinja chat templates of the two backbones, with the placeholders TempFlex expands and generation tags.

Every message's content is a string or a list of parts ``{"type": "text" | "image" | "video"}``; an image
part renders as ``<vision start><image placeholder><vision end>``, a video part likewise with the video
placeholder, and the processor expands each placeholder to its exact token count. Assistant content sits in
``{% generation %}`` tags, so ``apply_chat_template(..., return_assistant_tokens_mask=True)`` knows which
tokens to supervise.

- ``QWEN3_CHAT_TEMPLATE``: ``<|im_start|>{role}\\n{content}<|im_end|>\\n``. Non-thinking by default, as the
  official TempFlex training (``enable_thinking=False``): the generation prompt and every assistant turn
  carry an empty ``<think>\\n\\n</think>\\n\\n`` block, so training and inference see the same prefix; pass
  ``enable_thinking=True`` to leave the block to the model.
- ``GEMMA3_CHAT_TEMPLATE``: ``<bos><start_of_turn>user\\n...<end_of_turn>\\n<start_of_turn>model\\n``; the assistant
  role is ``model``; a system message is prepended to the first user turn (Gemma3 has no system role; its text is
  kept as written); every other text is trimmed of surrounding whitespace (``| trim``): both as the official Gemma 3
  template does. Images use Gemma3's ``<start_of_image>`` / ``<image_soft_token>`` / ``<end_of_image>``; videos use
  ``<video_soft_token>``, a token TempFlex adds to the tokenizer (its embedding row is never read: the model
  overwrites placeholders with visual features).
"""

from __future__ import annotations

__all__ = ["CHAT_FORMATS", "GEMMA3_CHAT_TEMPLATE", "QWEN3_CHAT_TEMPLATE"]

_CONTENT = (
    "{%- macro render_content(content) -%}"
    "{%- if content is string -%}{{- content TRIM -}}"
    "{%- else -%}"
    "{%- for part in content -%}"
    "{%- if part['type'] == 'image' -%}{{- IMAGE -}}"
    "{%- elif part['type'] == 'video' -%}{{- VIDEO -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] TRIM -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
)

QWEN3_CHAT_TEMPLATE = (
    _CONTENT.replace(" TRIM", "")
    .replace("IMAGE", "'<|vision_start|><|image_pad|><|vision_end|>'")
    .replace("VIDEO", "'<|vision_start|><|video_pad|><|vision_end|>'")
    + "{%- set empty_think = not (enable_thinking is defined and enable_thinking) -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if empty_think -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- generation -%}{{- render_content(message['content']) + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + render_content(message['content']) + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if empty_think -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)

GEMMA3_CHAT_TEMPLATE = (
    _CONTENT.replace(" TRIM", " | trim")
    .replace("IMAGE", "'<start_of_image><image_soft_token><end_of_image>'")
    .replace("VIDEO", "'<start_of_image><video_soft_token><end_of_image>'")
    + "{{- bos_token -}}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set system = message['content'] if message['content'] is string else message['content'][0]['text'] -%}"
    "{%- set ns.system = ns.system + system + '\\n\\n' -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<start_of_turn>model\\n' -}}"
    "{%- generation -%}{{- render_content(message['content']) + '<end_of_turn>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<start_of_turn>' + message['role'] + '\\n' + ns.system + render_content(message['content']) -}}"
    "{{- '<end_of_turn>\\n' -}}"
    "{%- set ns.system = '' -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)

CHAT_FORMATS: dict[str, dict[str, str]] = {
    "qwen3": {
        "chat_template": QWEN3_CHAT_TEMPLATE,
        "image_token": "<|image_pad|>",
        "video_token": "<|video_pad|>",
        "vision_start_token": "<|vision_start|>",
        "vision_end_token": "<|vision_end|>",
        "end_of_turn_token": "<|im_end|>",
    },
    "gemma3": {
        "chat_template": GEMMA3_CHAT_TEMPLATE,
        "image_token": "<image_soft_token>",
        "video_token": "<video_soft_token>",
        "vision_start_token": "<start_of_image>",
        "vision_end_token": "<end_of_image>",
        "end_of_turn_token": "<end_of_turn>",
    },
}
"""Per backbone: the template, the placeholder / delimiter tokens it uses, and the token that ends a turn."""
