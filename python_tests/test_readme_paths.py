"""Every file of this repository that the README's commands and text name exists
(issue 18: the README named configs that did not ship)."""
import glob
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("pyface/", "tools/", "bench/", "docs/", "csrc/", "python_tests/", ".ci/")
PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(re.escape(t) for t in TOP) + r")[\w./*-]*[\w*])")
CONFIG = re.compile(r"--config\s+(\S+)")
PLACEHOLDERS = {"C.yaml", "..."}  # the commands table's "pyface train --config C.yaml", "--config ..."


def readme_code() -> list[str]:
    """The README's fenced code blocks and inline code spans."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return blocks + inline


def test_readme_names_only_files_that_exist():
    code = readme_code()
    named = sorted({p for c in code for p in PATH.findall(c)})
    assert len(named) > 10  # the pattern finds the README's paths at all
    missing = [p for p in named if not (glob.glob(str(ROOT / p)) if "*" in p else (ROOT / p).exists())]
    assert not missing, f"README names files that do not exist: {missing}"


def test_readme_train_commands_name_shipped_configs():
    configs = sorted({m for c in readme_code() for m in CONFIG.findall(c)} - PLACEHOLDERS)
    assert configs, "no `--config` in the README"
    for c in configs:
        assert c.startswith("pyface/train/configs/") and (ROOT / c).is_file(), (
            f"README: --config {c} is not a shipped config (name it by its path under pyface/train/configs/)")


def test_the_pattern_catches_a_missing_file():
    assert PATH.findall("pyface train --config pyface/train/configs/nope.yaml; python tools/x.py") == [
        "pyface/train/configs/nope.yaml", "tools/x.py"]
    assert not (ROOT / "pyface/train/configs/nope.yaml").exists()
