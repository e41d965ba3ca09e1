"""The Dockerfile's shape (no Docker engine here to build it): slim base, wheels built in
a stage of their own, a final stage without compilers running as a non-root user, and
the dependency layer installed before the code is copied (so it stays cached)."""

import re

from tests.conftest import REPO

LINES = [line.strip() for line in re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text()).splitlines()
         if line.strip() and not line.strip().startswith("#")]


def _stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in LINES:
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_two_stages_on_a_slim_python_base():
    stages = _stages()
    assert len(stages) == 2
    for stage in stages:
        assert re.match(r"FROM python:3\.\d+-slim\b", stage[0])


def test_the_final_image_has_no_compilers_and_runs_as_a_non_root_user():
    final = _stages()[-1]
    text = "\n".join(final)
    for tool in ("build-essential", "gcc", "g++", "apt-get install"):
        assert tool not in text
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert final.index(next(line for line in final if line.startswith("USER "))) > \
        max(i for i, line in enumerate(final) if line.startswith("RUN "))


def test_dependencies_are_installed_before_the_code_arrives():
    build, final = _stages()
    first_code_copy = next(i for i, line in enumerate(build) if line.startswith("COPY worker"))
    deps_wheels = next(i for i, line in enumerate(build) if "pip wheel" in line and "requirements.txt" in line)
    assert deps_wheels < first_code_copy
    install_deps = next(i for i, line in enumerate(final) if "/wheels/deps" in line and "pip install" in line)
    install_app = next(i for i, line in enumerate(final) if "/wheels/app" in line and "pip install" in line)
    assert install_deps < install_app
