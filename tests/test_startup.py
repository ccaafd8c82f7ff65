"""Start-up: the package, its media readers and the command's parser import neither torch nor transformers, and the
lazy public names still resolve (and register the Auto classes) on first use. Times live in benchmarks/startup.py."""

import json
import subprocess
import sys

import pytest


def imported_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which heavy modules it left imported."""
    probe = code + "\nimport json, sys\nprint(json.dumps({m: m in sys.modules for m in ('torch', 'transformers')}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import tempflex",
        "from tempflex.media import load_image, load_video",
        "from tempflex.token_budget import num_image_tokens",
        "import tempflex.train, tempflex.evaluation",
        "from tempflex.cli import build_parser; build_parser()",
    ],
)
def test_light_imports_leave_torch_and_transformers_unimported(code):
    assert imported_after(code) == {"torch": False, "transformers": False}


def test_the_command_line_help_and_token_table_import_no_model():
    for argv in (["--help"], ["tokens", "--height", "720", "--width", "1280"], ["eval", "--help"]):
        code = f"import sys; from tempflex.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
        assert imported_after(code) == {"torch": False, "transformers": False}, argv


def test_a_public_name_loads_its_module_and_registers_the_auto_classes():
    code = (
        "import tempflex\nfrom transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor\n"
        "from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING\n"
        "from transformers.models.auto.processing_auto import PROCESSOR_MAPPING\n"
        "model = tempflex.TempFlexForConditionalGeneration\nprocessor = tempflex.TempFlexProcessor\n"
        "config = AutoConfig.for_model('tempflex')\n"
        "assert type(config) is tempflex.TempFlexConfig, type(config)\n"
        "assert MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING[type(config)] is model\n"
        "assert PROCESSOR_MAPPING[type(config)] is processor\n"
        "assert 'load' in dir(tempflex) and tempflex.load.__module__ == 'tempflex.loading'\n"
    )
    assert imported_after(code) == {"torch": True, "transformers": True}


def test_an_unknown_name_is_an_attribute_error_naming_it():
    import tempflex

    with pytest.raises(AttributeError, match="'tempflex' has no attribute 'TempFlexModel'"):
        tempflex.TempFlexModel  # noqa: B018
