"""The dependency rule: config ← worker (domain) ← tasks ← CLI. Domain code never imports
`tasks/`, and importing it builds no Celery app (scheduling goes through worker.enqueue)."""

import ast
import subprocess
import sys

from tests.conftest import REPO


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_domain_module_imports_tasks():
    offenders = []
    for path in sorted((REPO / "worker").rglob("*.py")):
        if "cli" in path.relative_to(REPO / "worker").parts:
            continue  # the CLI sits above tasks
        bad = {m for m in _imports(path) if m == "tasks" or m.startswith("tasks.")}
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert offenders == []


def test_config_imports_nothing_from_worker_or_tasks():
    for path in sorted((REPO / "config").rglob("*.py")):
        bad = {m for m in _imports(path) if m.split(".")[0] in ("worker", "tasks")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_importing_every_domain_module_builds_no_celery_app():
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "worker").rglob("*.py")
        if "cli" not in p.relative_to(REPO).parts and "migrations" not in p.parts and p.name != "celery.py")
    script = ("import importlib, sys\n"
              f"for m in {modules!r}: importlib.import_module(m)\n"
              "import celery._state as st\n"
              "print(len(list(st._get_active_apps())), 'worker.celery' in sys.modules, 'tasks' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "False", "False"], out.stdout
