"""Helpers for delivery tests: a config with stand-in partners, stored articles, rows."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import select

from config import parse_config
from tests.conftest import REPO, _toml, new_secret
from tests.support.partner_server import PartnerServer
from worker.articles import parse_article
from worker.delivery import DeliveryPolicy, DeliveryEngine
from worker.pipeline import record_article
from worker.store import AttemptRow, DeliveryRow

EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())


def make_config(*partners: dict):
    text = ['[site]\ntitle = "LNN"\nurl = "https://lnn.example"\nfeeds_url = "https://lnn.example/feeds"']
    for p in partners:
        text.append("[[partners]]\n" + "\n".join(f"{k} = {_value(v)}" for k, v in p.items()))
    return parse_config("\n".join(text) + "\n", "test.toml", {})


def _value(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml(k)} = {_toml(x)}" for k, x in v.items()) + "}"
    return _toml(v)


def partner_entry(name: str, server: PartnerServer, **extra) -> dict:
    entry = {"name": name, "url": server.url, "secret": server.secret, "allow_private": True,
             "retry_schedule": ["1s", "2s", "3s"], "timeout": "2s"}
    entry.update(extra)
    return entry


def article(n: int | str = 1, **changes) -> dict:
    return dict(EXAMPLE, id=f"web:story-{n}", url=f"https://lnn.example/story-{n}", **changes)


def store_article(store, config, data) -> list[int]:
    with store.session() as s:
        return record_article(s, parse_article(data, "t"), config).partner_deliveries


def rows(store, *ids) -> list[DeliveryRow]:
    with store.session() as s:
        q = select(DeliveryRow).where(DeliveryRow.kind == "partner").order_by(DeliveryRow.id)
        if ids:
            q = q.where(DeliveryRow.id.in_(ids))
        return s.scalars(q).all()


def row(store, delivery_id) -> DeliveryRow:
    return rows(store, delivery_id)[0]


def attempts(store, delivery_id=None) -> list[AttemptRow]:
    with store.session() as s:
        q = select(AttemptRow).order_by(AttemptRow.id)
        if delivery_id is not None:
            q = q.where(AttemptRow.delivery_id == delivery_id)
        return s.scalars(q).all()


def make_due(store, *ids) -> None:
    """Pretend the scheduled delay has passed."""
    from datetime import timedelta

    from worker.store import utcnow

    with store.session() as s:
        for r in s.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(ids))):
            if r.next_attempt_at is not None:
                r.next_attempt_at = utcnow() - timedelta(seconds=1)


@pytest.fixture
def servers(request):
    """Start stand-in partners on demand; all stopped at the end."""
    started: list[PartnerServer] = []

    def start(secret: str | None = None) -> PartnerServer:
        server = PartnerServer(secret or new_secret()).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    # Whatever a test planned, what was sent was what a real partner accepts (a test that sends
    # something a partner must refuse says so with `refusal_expected`).
    if "refusal_expected" not in request.keywords:
        for server in started:
            server.assert_only_valid(incomplete=server.incomplete)


@pytest.fixture
def deliverer_for(store, redis_client):
    made: list[DeliveryEngine] = []

    def make(config, **kwargs) -> DeliveryEngine:
        kwargs.setdefault("policy", DeliveryPolicy(rng=random.Random(1)))
        kwargs.setdefault("redis_client", redis_client)
        d = DeliveryEngine(store, config, **kwargs)
        made.append(d)
        return d

    yield make
    for d in made:
        d.pool.shutdown(wait=True)
        d.transports.close()


def start_worker(deployment, concurrency: int = 2, **env):
    """`syndicate run` (worker + beat) with extra environment; stopped by the deployment fixture."""
    from pathlib import Path

    from tests.conftest import wait_until

    deployment.env.update({k: str(v) for k, v in env.items()})
    deployment.syndicate("migrate", check=True)
    proc = deployment.start("run", "--concurrency", str(concurrency))
    wait_until(lambda: b"ready." in Path(proc.log_path).read_bytes() or proc.poll() is not None, 60,
               "worker to start")
    assert proc.poll() is None, deployment.log(proc)
    return proc
