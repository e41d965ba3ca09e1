"""Watching sources: the beat schedule's `poll_due` enqueues a `poll_source` per due source."""
import logging

from worker import runtime
from worker.celery import app
from worker.watch import due_sources
from worker.watch import poll_source as poll

log = logging.getLogger("syndicate.watch")


@app.task(name="tasks.watch.poll_due")
def poll_due() -> list[str]:
    names = due_sources(runtime.config(), runtime.store())
    for name in names:
        poll_source.delay(name)
    return names


@app.task(name="tasks.watch.poll_source")
def poll_source(name: str) -> dict:
    config = runtime.config()
    if config.source(name) is None:
        log.warning("source=%s is no longer in the configuration; poll dropped", name)
        return {"source": name, "status": "unknown"}
    return poll(name, config=config, store=runtime.store(), redis_client=runtime.redis_client()).as_dict()
