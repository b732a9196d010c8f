"""docs/papers.md, the fidelity document, is checked against the tree: every test it names
exists, every file it names exists, every table row names a test, and the equations,
formulas and algorithm lines are all there."""
import glob
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "papers.md"
TEST_REF = re.compile(r"python_tests/(test_\w+\.py)::(test_\w+)")
FILE_REF = re.compile(r"`((?:pyface|csrc|tools|bench|docs|python_tests)/[\w./*{},-]+)`")


def _text() -> str:
    return DOC.read_text()


def _tables() -> list[tuple[str, list[list[str]]]]:
    """(heading, rows as cell lists) of every table, header and separator rows left out."""
    out, heading, rows = [], "", None
    for line in _text().splitlines():
        if line.startswith("#"):
            heading = line.strip("# ")
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            if rows is None:
                rows = []
                out.append((heading, rows, cells))
            elif not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
        else:
            rows = None
    return [(h, r) for h, r, _ in out]


def _expand(path: str) -> list[str]:
    m = re.search(r"\{([^}]*)\}", path)
    if not m:
        return [path]
    return [x for alt in m.group(1).split(",") for x in _expand(path[:m.start()] + alt + path[m.end():])]


def test_every_named_test_exists():
    refs = sorted(set(TEST_REF.findall(_text())))
    assert len(refs) > 60
    missing = []
    for f, name in refs:
        p = ROOT / "python_tests" / f
        if not p.is_file() or not re.search(rf"^def {name}\(", p.read_text(), flags=re.M):
            missing.append(f"{f}::{name}")
    assert not missing, f"docs/papers.md names tests that do not exist: {missing}"


def test_every_named_file_exists():
    paths = sorted({x for p in FILE_REF.findall(_text()) for x in _expand(p)})
    assert len(paths) > 20
    missing = [p for p in paths if not (glob.glob(str(ROOT / p)) if "*" in p else (ROOT / p).exists())]
    assert not missing, f"docs/papers.md names files that do not exist: {missing}"


def test_every_table_row_names_its_test():
    tables = _tables()
    assert len(tables) >= 6
    bare = [f"{h}: {row[0]}" for h, rows in tables for row in rows if not TEST_REF.search(" ".join(row))]
    assert not bare, f"table rows without a test: {bare}"


def _covered(heading_part: str) -> set[int]:
    lines = set()
    for h, rows in _tables():
        if heading_part in h:
            for row in rows:
                for a, b in re.findall(r"(\d+)(?:[–-](\d+))?", row[0]):
                    lines |= set(range(int(a), int(b or a) + 1))
    return lines


@pytest.mark.parametrize("part,n", [("Algorithm 1", 33), ("Algorithm 2", 19)])
def test_every_algorithm_line_has_a_row(part, n):
    assert set(range(1, n + 1)) <= _covered(part), sorted(set(range(1, n + 1)) - _covered(part))


def test_every_equation_and_formula_has_a_row():
    eqs = {int(m) for h, rows in _tables() if "equations" in h for row in rows
           for m in re.findall(r"Eq\. (\d+)", row[0])}
    assert eqs == set(range(1, 13))
    formulas = {int(m) for h, rows in _tables() if "HMTL" in h for row in rows
                for m in re.findall(r"Formula (\d)", row[0])}
    assert formulas == {1, 2, 3}


def test_the_ambiguities_the_issue_names_are_discussed():
    text = _text()
    for heading in ("γ_P: sum or mean", "Eq. 8: the projection", "Units of Eq. 3–5", "Eq. 10: cos(θ − m_p) or CosFace",
                    "N views of Algorithm 1", "Validity thresholds"):
        assert f"### {heading}" in text, heading


def test_the_checks_catch_a_wrong_reference(tmp_path):
    assert TEST_REF.findall("`python_tests/test_x.py::test_y`") == [("test_x.py", "test_y")]
    assert not (ROOT / "python_tests" / "test_x.py").exists()
    assert _expand("a/b{1,2}.yaml") == ["a/b1.yaml", "a/b2.yaml"]
