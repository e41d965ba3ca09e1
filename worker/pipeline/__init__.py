"""Article stored → deliveries created, in one transaction → tasks enqueued after commit.

`record_article(s)` decides the event (published / updated / unpublished / nothing),
writes the article, the event and one delivery row per destination together, so
a crash can never leave an article without its deliveries. `dispatch` puts the
work on the broker only after that commit; if it never gets there, the periodic
sweep finds the rows due and enqueues them.

One job a module: `events` (what an article means, its event data, sanitizing once),
`record` (storing a batch), `ingest` (batches to transactions, the one-by-one retry),
`dispatch` (enqueueing), `republish`, `sweep` (rows due again).
"""

from worker.pipeline.dispatch import DISPATCH_BATCH, broker_errors, dispatch, request_feed_builds
from worker.pipeline.events import (PUBLISHED, UNPUBLISHED, UPDATED, Recorded, decide_event, event_data, log_recorded,
                                    new_message_id, republishable, unpublished_data)
from worker.pipeline.ingest import INGEST_BATCH, Ingested, ingest_articles
from worker.pipeline.record import channel_due, record_article, record_articles, row_state, supersede_older
from worker.pipeline.republish import republish_article
from worker.pipeline.sweep import due_deliveries

__all__ = [
    "DISPATCH_BATCH", "INGEST_BATCH", "PUBLISHED", "UNPUBLISHED", "UPDATED", "Ingested", "Recorded", "broker_errors",
    "channel_due", "decide_event", "dispatch", "due_deliveries", "event_data", "ingest_articles", "log_recorded",
    "new_message_id", "record_article", "record_articles", "republish_article", "republishable",
    "request_feed_builds", "row_state", "supersede_older", "unpublished_data",
]
