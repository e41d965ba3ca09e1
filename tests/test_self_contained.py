"""The suite reads nothing from outside the repository: a fresh clone runs it.

Data tests need lives in tests/fixtures/ (origins in its README). This looks for the
ways a test used to reach beside the checkout: a `shared` folder, or a path climbing
above the repository root.
"""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _outside_references(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ("shared", "../shared"):
            found.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: {node.value!r}")
        if isinstance(node, ast.Name) and node.id == "SHARED":
            found.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: SHARED")
    return found


def test_no_test_reads_from_beside_the_repository():
    found = [hit for path in sorted(TESTS.rglob("*.py")) if path != Path(__file__).resolve()
             for hit in _outside_references(path)]
    assert not found, "tests read outside the repository; copy the data into tests/fixtures/:\n" + "\n".join(found)


def test_every_fixture_file_has_its_origin_noted():
    readme = (TESTS / "fixtures" / "README.md").read_text()
    data = [p for p in (TESTS / "fixtures").rglob("*") if p.is_file() and p.name != "README.md"]
    assert data
    missing = [str(p.relative_to(TESTS / "fixtures")) for p in data if p.name not in readme]
    assert not missing, f"fixtures without a noted origin in tests/fixtures/README.md: {missing}"
