"""`tasks.republish`: the operator's republish as a task (callable from Flower or
`celery -A worker call tasks.republish --kwargs '{"article_id": "wp:101"}'`)."""

from __future__ import annotations

from datetime import timedelta

from config import parse_duration
from worker import runtime
from worker.celery import app
from worker.operations.republish import delivery_ids, matching_articles, republish as republish_articles
from worker.store import utcnow


@app.task(name="tasks.republish")
def republish(article_id: str | None = None, since: str | None = None, section: str | None = None,
              to: list[str] | None = None) -> dict:
    store, config = runtime.store(), runtime.config()
    if article_id:
        ids = [article_id]
    elif since:
        ids = matching_articles(store, utcnow() - timedelta(seconds=parse_duration(since)), section)
    else:
        raise ValueError("give article_id or since")
    records = republish_articles(store, config, ids, to=to)
    return {"articles": len(records), "deliveries": len(delivery_ids(records))}
