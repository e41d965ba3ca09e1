"""Reading docker-compose.yml as Docker Compose would, to run its services here.

There is no Docker engine on these machines, so the tests take each service's own
`command` and `environment` from the file, interpolate `${...}` from `.env.example` (as
`docker compose` reads `.env`), and point the addresses of the other services (the
`redis` and `postgres` hosts) and the mounted paths at local equivalents.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tests.conftest import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        present = name in env and (env[name] != "" or op in (None, "-", "?"))
        if op in (":?", "?") and not present:
            raise ValueError(f"compose would refuse to start: {arg}")
        if present:
            return env[name]
        return arg if op in (":-", "-") else ""

    return _VARIABLE.sub(replace, value)


def load(env_overrides: dict[str, str] | None = None) -> tuple[dict, dict[str, str]]:
    """The compose file as data (anchors merged) and the variables it is interpolated with."""
    variables = read_env_file(REPO / ".env.example")
    variables.update(env_overrides or {})
    return yaml.safe_load(COMPOSE_FILE.read_text()), variables


def _env_list(environment) -> dict[str, str]:
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {k: "" if v is None else str(v) for k, v in (environment or {}).items()}


class LocalService:
    """One service of the file, as a local process would run it."""

    def __init__(self, name: str, doc: dict, variables: dict[str, str]):
        self.name = name
        self.spec = interpolate(doc["services"][name], variables)
        self.variables = variables

    @property
    def command(self) -> list[str]:
        return list(self.spec["command"])

    def environment(self, addresses: dict[str, str], mounts: dict[str, Path]) -> dict[str, str]:
        """The container's environment: the env_file (.env, here .env.example) under the
        service's `environment`, with other services' URLs and mounted paths made local."""
        env = {}
        if self.spec.get("env_file"):
            env.update(self.variables)
        env.update(_env_list(self.spec.get("environment")))
        for key, value in env.items():
            host = urlsplit(value).hostname if "://" in value else None
            if host in addresses:
                env[key] = addresses[host]
                continue
            for target, local in mounts.items():
                if value == target or value.startswith(target + "/"):
                    env[key] = str(local) + value[len(target):]
        return env

    def volume_targets(self) -> dict[str, str]:
        """Mount target → source (a named volume or a path relative to the repository)."""
        targets = {}
        for volume in self.spec.get("volumes", []):
            source, target = volume.split(":")[:2]
            targets[target] = source
        return targets
