"""A new event for an article already stored (`syndicate republish`)."""

from __future__ import annotations

from config import SyndicationConfig
from worker.articles import Article
from worker.pipeline.events import PUBLISHED, UNPUBLISHED, Recorded, log_recorded, new_message_id, unpublished_data
from worker.pipeline.record import supersede_older
from worker.store import ArticleRow, DeliveryRow, EventRow, utcnow


def republish_article(store, config: SyndicationConfig, article_id: str, partners: list[str] | None = None,
                      to: list[str] | None = None) -> Recorded:
    """A new event for an article's current state, to the destinations it qualifies for
    (or only those named in `to`): new messages with new ids, so a partner that dropped
    its copy gets it again. A channel that already has a post of the story gets it
    edited (or left as it is where posts cannot be edited), never a second post.
    Feeds are not touched."""
    names = set(to or []) | set(partners or []) if (to or partners) else None
    with store.session() as session:
        row = session.get(ArticleRow, article_id, with_for_update=True)
        if row is None:
            raise LookupError(f"no article {article_id!r} in the store")
        now = utcnow()
        if row.status == "published":
            event_type, data = PUBLISHED, Article.from_row(row).data()
        else:
            event_type, data = UNPUBLISHED, unpublished_data(row.id, row.url, row.version, row.updated_at)
        event = EventRow(article_id=row.id, version=row.version, type=event_type, data=data, origin="republish",
                         created_at=now)
        session.add(event)
        session.flush()
        result = Recorded(row.id, event_type=event_type, event_id=event.id, version=row.version)
        tags = list(row.tags or [])
        made = []
        for kind, dests in (("partner", config.partners), ("channel", config.channels)):
            wanted = [d for d in dests if d.wants(event_type, row.section, tags) and (names is None or d.name in names)]
            rows = [DeliveryRow(event_id=event.id, article_id=row.id, version=row.version, event_type=event_type,
                                kind=kind, destination=d.name, message_id=new_message_id(), status="pending",
                                attempts=0, next_attempt_at=now, queued_at=now, created_at=now, updated_at=now)
                    for d in wanted]
            session.add_all(rows)
            supersede_older(session, event, kind, [d.name for d in wanted], now)
            made.append(rows)
        session.flush()
        result.partner_deliveries = [r.id for r in made[0]]
        result.channel_deliveries = [r.id for r in made[1]]
    log_recorded(result)
    return result
