"""What an operator sees of an article: its state and each destination's delivery."""

from __future__ import annotations

from sqlalchemy import select

from worker.formatting import iso
from worker.store import ArticleRow, DeliveryRow, EventRow, RejectionRow, Store


def post_link(remote: dict | None) -> str | None:
    """The public link of a channel post (None for partners, or a post not made yet)."""
    if not remote or remote.get("deleted"):
        return None
    return remote.get("url")


def article_status(store: Store, article_id: str) -> dict | None:
    with store.session() as s:
        art = s.get(ArticleRow, article_id)
        rejections = s.scalars(select(RejectionRow).where(RejectionRow.article_id == article_id)
                               .order_by(RejectionRow.id)).all()
        if art is None and not rejections:
            return None
        deliveries = s.scalars(select(DeliveryRow).where(DeliveryRow.article_id == article_id)
                               .order_by(DeliveryRow.id)).all()
        notes = [{"event": e.type, "version": e.version, "notes": e.notes} for e in s.scalars(
            select(EventRow).where(EventRow.article_id == article_id, EventRow.notes.is_not(None))
            .order_by(EventRow.id))]
        return {
            "article": None if art is None else {
                "id": art.id, "title": art.title, "url": art.url, "status": art.status, "version": art.version,
                "section": art.section, "published_at": iso(art.published_at), "updated_at": iso(art.updated_at),
            },
            "deliveries": [
                {
                    "id": d.id, "kind": d.kind, "destination": d.destination, "event": d.event_type,
                    "version": d.version, "message_id": d.message_id, "status": d.status, "attempts": d.attempts,
                    "last_status_code": d.last_status_code, "last_error": d.last_error,
                    "next_attempt_at": iso(d.next_attempt_at), "delivered_at": iso(d.delivered_at),
                    "remote_id": d.remote_id, "post_url": post_link(d.remote),
                    "deleted": bool(d.remote and d.remote.get("deleted")),
                    "created_at": iso(d.created_at), "updated_at": iso(d.updated_at),
                }
                for d in deliveries
            ],
            "cleaning": notes,
            "rejections": [
                {"source": r.source, "upstream_id": r.upstream_id, "where": r.where, "reason": r.reason,
                 "created_at": iso(r.created_at)}
                for r in rejections
            ],
        }


def recent_articles(store: Store, limit: int = 20) -> list[dict]:
    """The most recently changed articles, each with its destinations' state: per destination
    (kind, name), the status of its newest delivery."""
    with store.session() as s:
        arts = s.scalars(select(ArticleRow).order_by(ArticleRow.changed_at.desc(), ArticleRow.id)
                         .limit(limit)).all()
        ids = [a.id for a in arts]
        newest: dict[str, dict] = {i: {} for i in ids}
        seen: dict[tuple, int] = {}
        for d in s.execute(select(DeliveryRow.article_id, DeliveryRow.kind, DeliveryRow.destination,
                                  DeliveryRow.event_id, DeliveryRow.status)
                           .where(DeliveryRow.article_id.in_(ids)).order_by(DeliveryRow.event_id)):
            key = (d.article_id, d.kind, d.destination)
            if d.event_id >= seen.get(key, 0):
                seen[key] = d.event_id
                newest[d.article_id][(d.kind, d.destination)] = d.status
        return [{"id": a.id, "title": a.title, "status": a.status, "changed_at": iso(a.changed_at),
                 "destinations": newest[a.id]} for a in arts]
