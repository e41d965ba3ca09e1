"""Republishing: an article's current version again, as a new message, to every
destination it qualifies for or to the named ones — one article, or every article
changed within a time window (optionally one section). Called by `syndicate
republish` and by the `tasks.republish` task (Flower, `celery -A worker call`)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, select

from worker.pipeline import Recorded, dispatch, republish_article
from worker.store import ArticleRow, DeliveryRow


class UnknownDestination(ValueError):
    pass


def check_destinations(config, names: list[str] | None) -> None:
    known = {d.name for d in config.destinations}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise UnknownDestination(f"no destination {unknown[0]!r} in the configuration "
                                 f"(known: {', '.join(sorted(known)) or 'none'})")


def matching_articles(store, since: datetime, section: str | None = None) -> list[str]:
    """Ids of the articles changed since `since` (newest first), in `section` if given."""
    with store.session() as s:
        q = select(ArticleRow.id).where(ArticleRow.changed_at >= since)
        if section:
            q = q.where(ArticleRow.section == section)
        return list(s.scalars(q.order_by(ArticleRow.changed_at.desc(), ArticleRow.id)))


def republish(store, config, article_ids: list[str], to: list[str] | None = None,
              on_each=None) -> list[Recorded]:
    """Republish each article (unknown ones raise LookupError before anything is written
    for them); deliveries are enqueued after each article's commit."""
    check_destinations(config, to)
    done = []
    for article_id in article_ids:
        rec = republish_article(store, config, article_id, to=to)
        try:
            dispatch([rec], config)
        except Exception:  # noqa: BLE001 - the rows are pending: the sweep sends them
            pass
        done.append(rec)
        if on_each is not None:
            on_each(rec)
    return done


def delivery_ids(records: list[Recorded]) -> list[int]:
    return [i for r in records for i in r.partner_deliveries + r.channel_deliveries]


def progress(store, ids: list[int]) -> dict:
    """Where these deliveries are: counts per status, and per destination its status."""
    if not ids:
        return {"counts": {}, "rows": []}
    with store.session() as s:
        rows = s.execute(select(DeliveryRow.id, DeliveryRow.article_id, DeliveryRow.kind, DeliveryRow.destination,
                                DeliveryRow.status, DeliveryRow.attempts, DeliveryRow.last_error,
                                DeliveryRow.remote)
                         .where(DeliveryRow.id.in_(ids)).order_by(DeliveryRow.id)).all()
        counts = dict(s.execute(select(DeliveryRow.status, func.count()).where(DeliveryRow.id.in_(ids))
                                .group_by(DeliveryRow.status)).all())
    return {"counts": dict(Counter(counts)), "rows": [{
        "id": r.id, "article_id": r.article_id, "kind": r.kind, "destination": r.destination, "status": r.status,
        "attempts": r.attempts, "last_error": r.last_error, "url": (r.remote or {}).get("url"),
    } for r in rows]}


def finished(report: dict) -> bool:
    return not (report["counts"].get("pending", 0) + report["counts"].get("sending", 0))
