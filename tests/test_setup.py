"""The set-up: README and CI run the same script, and a test may skip a part only when the user left it out."""

from pathlib import Path

import pytest

from setup_parts import missing, require

ROOT = Path(__file__).resolve().parents[1]


def test_readme_and_ci_run_the_same_setup_script():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup" in readme and "bash scripts/setup" in ci
    assert "pip install" not in ci  # every install step lives in scripts/setup
    script = (ROOT / "scripts" / "setup").read_text()
    for step in ("torch==2.13.0", '".[dev]"', "--no-deps lmms-eval==0.7.3", "DS_BUILD_OPS=0", "chromium-driver"):
        assert step in script, step


def test_a_missing_part_fails_with_the_command_unless_left_out_on_purpose(monkeypatch):
    monkeypatch.delenv("TEMPFLEX_SKIP", raising=False)
    with pytest.raises(pytest.fail.Exception, match="run `bash scripts/setup`"):
        require("tempflex_no_such_module", "lmms-eval")
    monkeypatch.setenv("TEMPFLEX_SKIP", "browser, lmms-eval")
    with pytest.raises(
        pytest.skip.Exception, match=r"lmms-eval left out on purpose \(TEMPFLEX_SKIP=browser, lmms-eval"
    ):
        missing("lmms-eval", "lmms_eval")
    with pytest.raises(pytest.fail.Exception, match="TEMPFLEX_SKIP=deepspeed to leave it out"):
        missing("deepspeed", "DeepSpeed")
    assert require("json", "dev").__name__ == "json"


def test_a_whole_test_file_of_a_part_left_out_skips_and_says_why(tmp_path):
    """A module-level ``require`` (as in test_eval_lmms.py): skipped with its reason when chosen, an error if not."""
    import os
    import subprocess
    import sys

    (tmp_path / "test_part.py").write_text(
        "from setup_parts import require\n\nrequire('tempflex_no_such_module', 'lmms-eval')\n\n\ndef test_x():\n"
        "    pass\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path / "test_part.py")]
    chosen = subprocess.run(command, cwd=tmp_path, env={**environment, "TEMPFLEX_SKIP": "lmms-eval"},
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert chosen.returncode == 5 and "1 skipped" in chosen.stdout, chosen.stdout  # 5: nothing left to run
    assert "lmms-eval left out on purpose (TEMPFLEX_SKIP=lmms-eval)" in chosen.stdout
    environment.pop("TEMPFLEX_SKIP", None)
    unchosen = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert unchosen.returncode != 0 and "run `bash scripts/setup`" in unchosen.stdout, unchosen.stdout
