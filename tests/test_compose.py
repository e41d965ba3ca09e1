"""docker-compose.yml follows the Compose Specification and runs our own commands."""

import json

import jsonschema
import yaml

from tests.conftest import REPO, SHARED


def test_compose_file_validates_against_the_compose_spec():
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    schema = json.loads((SHARED / "schemas" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(doc)
    commands = {name: svc.get("command") for name, svc in doc["services"].items()}
    assert commands["worker"][:2] == ["syndicate", "worker"]
    assert commands["beat"] == ["syndicate", "beat"]
    assert commands["migrate"] == ["syndicate", "migrate"]
