"""The generation prompt: the paper's Figure 6 with the 15 task definitions of Figure 7, templated and versioned.

``PromptSpec()`` is the paper's prompt. Its text is the appendix's, with three marked changes: OCR slips of the
text copy fixed ("GPT-40" -> "GPT-4o", "Ouestion" -> "Question"); Figure 7's "Binary Questions" entry, whose
first example has no answer in the paper, keeps its two questions and its one answer as printed; and the
"Output Format" section, which in the paper only says "a JSON file", names the keys we validate
(``OUTPUT_FORMAT``). The paper's main text speaks of "twelve instruction dimensions" while Figure 6 asks for
"5 dimensions out of 15" and Figure 7 defines 15: we follow the figures (15).

Override any part: ``PromptSpec(template=..., tasks=...)`` (or ``--prompt-file`` / ``--tasks-file``); the
template must contain ``{task_definitions}``. ``spec.version`` names the prompt in the store: ``tempflex2m-``
plus a hash of the rendered text and the counts, so a changed prompt never reuses answers made with another.

Example::

    spec = PromptSpec()
    spec.version              # -> 'tempflex2m-' + 10 hex digits
    len(spec.dimensions)      # -> 15
    messages = spec.messages(["data:image/jpeg;base64,..."], {"asr": "hello"})
    [m["role"] for m in messages]   # -> ['system', 'user']
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

__all__ = ["FIGURE6_TEMPLATE", "FIGURE7_TASKS", "METADATA_FIELDS", "OUTPUT_FORMAT", "PromptSpec", "parse_tasks"]

FIGURE6_TEMPLATE = """\
You are an AI assistant tasked with generating questions and answers about video content to create a video \
instruction tuning dataset.

### TASK
1. Users will provide multiple stitched images, each containing 9 frames. These frames are extracted from the \
original video at a frame rate of 1 fps and are arranged from left to right and top to bottom in tic-tac-toe \
style(3x3). The order of the squares is as follows: the first row from left to right represents 1, 2, 3; the \
second row from left to right represents 4, 5, 6; and the third row from left to right represents 7, 8, 9. Each \
row of images is sequentially coherent in terms of time from left to right. Multiple stitched images are also \
coherent over time. For example, the 9 frames in the first stitched image represent frames from 0 to 8 seconds, \
while the 9 frames in the second stitched image represent frames from 9 to 17 seconds. Please note that any white \
images within the stitched images are meaningless and can be ignored.
2. Users will also provide 1. ASR text corresponding to the video; 2. Activities happening in the video; \
3. Objects / Props that appear in the video; 4. Video brief summary;
3. Generate a detailed and accurate description of a video based on multiple stitched images and clip captions \
provided. Instructions for writing the detailed description: Focus on describing key visual details such as \
appearance, motion, sequence of actions, objects involved, and interactions between elements in the video. Leave \
out any descriptions about the atmosphere, mood, style, aesthetics, proficiency, or emotional tone of the video. \
Make sure the description is no more than {max_sentences} sentences. Combine and organize information from all \
frames into one clear and detailed description, removing any repeated or conflicting details. Emphasize important \
points like the order of events, appearance and actions of people or objects, and any significant changes or \
movements.
4. Generate two different types of VQA: vqa-type1: VQA based solely on video content; vqa-type2: VQA combining \
video content and video ASR text information. All question-answer pairs should be faithful to the content of the \
video description and developed from different dimensions to promote comprehensive understanding of the video.

Here are some question dimensions and their explanations and exampled question-answer pairs for reference: \
{task_definitions}

### Guidelines For Question-Answer Pairs Generation:
- Read the stitched frames provided carefully, paying attention to the content, such as the scene where the video \
takes place, the main characters and their behaviors, and the development of the events.
- Generate {n_type1} vqa-type1 question-answer pairs: VQA based solely on (1)Stitched images and (2)Props that \
appear in the video, neither the Answer nor the Question should contain any inferences that require ASR text or \
Activities.
- Generate {n_type2} vqa-type2 question-answer pairs: VQA combining (1) Stitched images; (2)ASR text corresponding \
to the video; (3)Activities happening in the video; (4)Props that appear in the video; (5)Video brief summary. This \
means you can use all the information provided by the user to generate the VQA.
- All question-answer pairs should be faithful to the content of the video description and developed from \
different dimensions to promote comprehensive understanding of the video. The question-answer pairs should cover \
as many question dimensions and not deviate from the content of the video.
- Each VQA type generate {n_type1} question-answer pairs, total {n_total} question-answer pairs. You need to select \
the most suitable {n_type1} dimensions out of {n_dimensions} question dimensions for this video, and generate \
questions based on these dimensions.
- How to choose question dimensions: Evaluate which dimensions are suitable for generating questions based on the \
visual content of the video. Ensure the accuracy of the generated Questions and Answers as much as possible. \
Prioritize selecting dimensions where both Questions and Answers are clearly demonstrated in the video. Avoid \
choosing dimensions that cannot be directly displayed by the video visuals and require further inference.
- The question should be objective and avoid using subjective words like infer, suggest, likely, indicate, convey, \
and so on.
- The questions must be complex and require at least 2 steps of thinking to reach the correct answer. A complex \
question does not mean a question asking combination of elements.
- Questions from different dimensions should be as distinct as possible, meaning both the questions and answers \
need to be diverse, rather than repeatedly asking about a specific action from different dimensions.

### Output Format:
1. Your output should be formed in a JSON file.
2. Only provide the Python dictionary string.
{output_format}"""
"""Figure 6 of the paper; ``{max_sentences}`` is 20, the counts are 5 and 5 (the paper's numbers)."""

OUTPUT_FORMAT = """\
3. Use exactly these keys: {{"caption": "<the detailed description>", "vqa_type1": [{{"dimension": "<one of the \
question dimensions above, spelled as given>", "question": "...", "answer": "..."}}, ...], "vqa_type2": [...]}}."""
"""Our addition to Figure 6's output format: the keys the validator reads (the paper does not print them)."""

FIGURE7_TASKS = """\
# Temporal Reasoning: Designed to assess reasoning about temporal relationships between actions/events. Questions \
involve previous, present, or next actions. ## Question-1: What activity did the child perform just before \
deciding to sit on the baby chair? ## Answer-1: The child was playing with a toy.
# Spatial Awareness: Tests the ability to perceive spatial relationships between observed instances in a video \
scene. ## Question-1: Where were the objects located in relation to the main character before they moved them? \
## Answer-1: The objects were initially placed on the left side of the table next to the window.
# Causal Reasoning: Focuses on explaining actions/events, determining intentions of actions or causes for \
subsequent events. ## Question-1: What prompted the person to run towards the door suddenly? ## Answer-1: The \
person heard a loud noise coming from outside the door.
# Motion Analysis: Involves discerning variations in speed, including absolute and relative speeds. \
## Question-1: How did the speed of the car change from the beginning to the end of the chase scene? \
## Answer-1: The car accelerated rapidly at first but slowed down as it approached the crowded intersection.
# Binary Questions: Involves yes or no questions related to the video content. ## Question-1: Did the child look \
at the window before moving to the chair? (from a scene where this detail might be subtle) ## Question-2: Was there \
a noticeable change in lighting before the action scene started? ## Answer-2: No
# Count and Quantity: Tests the ability to count instances of objects, people, actions, and to distinguish between \
old and new elements in a scene. ## Question-1: How many books did the child pick up from the floor throughout the \
video? ## Answer-1: The child picked up three books from the floor.
# Narrative Understanding: Challenges the ability to interpret the plot in the video. ## Question-1: What is the \
underlying reason for the character's behavior throughout the video? ## Answer-1: The character is trying to find \
a hidden object that is crucial to the story.
# Object Description: Assesses the ability to describe attributes of objects, like their appearance and function. \
## Question-1: Describe the appearance and possible function of the object placed next to the lamp. ## Answer-1: \
The object is a spherical device with a digital screen, likely used as an alarm clock.
# Sequence Ordering: Challenges recognition of the temporal sequence of activities in videos. ## Question-1: \
Arrange the following events in the order they occurred: the child playing with the toy, the child sitting on the \
chair, the child picking up the book. ## Answer-1: The child was playing with the toy, then picked up the book, and \
finally sat on the chair.
# Fine-grain Action Recognition: Creates questions challenging comprehension of subtle actions. ## Question-1: What \
specific gestures did the character use to communicate with the other person? ## Answer-1: The character used hand \
signals and nodding to communicate without speaking.
# Human Activity and Appearance Description: Involves describing actions or attributes of people, such as their \
activities and appearances. ## Question-1: Describe the attire and actions of the main character during the garden \
scene. ## Answer-1: The main character is wearing a blue shirt and jeans, and they are watering the plants.
# Attribute Evolution: Centers on how attributes of objects or the entire video change over time, like size, \
shape, color, and more. ## Question-1: How did the color of the sky change from the beginning to the end of the \
scene? ## Answer-1: The sky changed from a bright blue to a deep orange as the sun set.
# Camera Movement Direction: Focuses on the direction of camera movement. ## Question-1: In which direction did the \
camera pan during the opening scene? ## Answer-1: The camera panned from left to right during the opening scene.
# Object Movement Direction: Emphasizes perception of object movement direction. ## Question-1: Which direction \
did the car move when entering the frame? ## Answer-1: The car moved from the right to the left when entering the \
frame.
# Scene Description: Assesses the ability to describe the major scene of the video, like where it takes place and \
the overall environment. ## Question-1: Describe the setting and atmosphere of the final battle scene. \
## Answer-1: The final battle took place in a dimly lit warehouse filled with crates, creating a tense and gritty \
atmosphere."""
"""Figure 7 of the paper: one ``# Name: definition ## Question-k: ... ## Answer-k: ...`` entry per line."""

METADATA_FIELDS = (
    ("asr", "ASR text"),
    ("activities", "Activities"),
    ("objects", "Objects / Props"),
    ("summary", "Video brief summary"),
    ("title", "Title"),
    ("tags", "Tags"),
)
"""Metadata keys sent to the model, in order, with their labels (Figure 6's four, then title and tags)."""

_ENTRY = re.compile(r"^#\s*([^#:\n][^:\n]*?)\s*:", re.MULTILINE)


def parse_tasks(tasks: str) -> tuple[str, ...]:
    """The dimension names of a task-definition text, in order.

    >>> parse_tasks(FIGURE7_TASKS)[:3]
    ('Temporal Reasoning', 'Spatial Awareness', 'Causal Reasoning')
    """
    names = tuple(match.group(1) for match in _ENTRY.finditer(tasks))
    if not names:
        raise ValueError("task definitions name no dimension: expected lines like '# Name: definition ...'")
    if len({name.lower() for name in names}) != len(names):
        raise ValueError(f"task definitions name a dimension twice: {names}")
    return names


def _metadata_text(metadata: dict) -> str:
    """The user's text part: each metadata field on its own line, ``(none)`` where missing."""
    lines = []
    for key, label in METADATA_FIELDS:
        value = metadata.get(key)
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(item) for item in value)
        lines.append(f"{label}: {value if value not in (None, '') else '(none)'}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PromptSpec:
    """A generation prompt: template (with ``{task_definitions}``), task definitions and the requested counts."""

    template: str = FIGURE6_TEMPLATE
    tasks: str = FIGURE7_TASKS
    n_type1: int = 5
    n_type2: int = 5
    max_sentences: int = 20
    name: str = "tempflex2m"
    dimensions: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if "{task_definitions}" not in self.template:
            raise ValueError("a prompt template must contain '{task_definitions}'")
        if self.n_type1 < 1 or self.n_type2 < 0 or self.max_sentences < 1:
            raise ValueError(f"bad counts: n_type1={self.n_type1}, n_type2={self.n_type2}, "
                             f"max_sentences={self.max_sentences}")  # fmt: skip
        object.__setattr__(self, "dimensions", parse_tasks(self.tasks))

    def system_text(self) -> str:
        """The rendered system prompt."""
        values = {
            "task_definitions": "\n" + self.tasks,
            "max_sentences": self.max_sentences,
            "n_type1": self.n_type1,
            "n_type2": self.n_type2,
            "n_total": self.n_type1 + self.n_type2,
            "n_dimensions": len(self.dimensions),
            "output_format": OUTPUT_FORMAT.format(),
        }
        try:
            return self.template.format(**values)
        except (KeyError, IndexError) as error:
            raise ValueError(f"prompt template has an unknown placeholder {error}; known: {sorted(values)}") from None

    @property
    def version(self) -> str:
        """``name-<hash>``: the store key part that changes whenever the rendered prompt or the counts change."""
        digest = hashlib.sha256(f"{self.system_text()}|{self.n_type1}|{self.n_type2}".encode()).hexdigest()
        return f"{self.name}-{digest[:10]}"

    def messages(self, image_uris: list[str], metadata: dict, *, note: str | None = None) -> list[dict]:
        """OpenAI chat messages: the system prompt, then the metadata text, an optional note and the grid images."""
        text = _metadata_text(metadata) + (f"\n{note}" if note else "")
        content = [{"type": "text", "text": text}]
        content += [{"type": "image_url", "image_url": {"url": uri}} for uri in image_uris]
        return [{"role": "system", "content": self.system_text()}, {"role": "user", "content": content}]

    def repair_message(self, reason: str) -> dict:
        """The user turn that asks again after an invalid answer, saying what was wrong."""
        return {
            "role": "user",
            "content": f"Your previous output is invalid: {reason}. Reply again with only the JSON object, with "
            f"a caption of at most {self.max_sentences} sentences, exactly {self.n_type1} vqa_type1 and "
            f"{self.n_type2} vqa_type2 pairs, each dimension one of: {', '.join(self.dimensions)}.",
        }
