from worker.store.db import Store, get_store, reset_stores  # noqa: F401
from worker.store.models import (  # noqa: F401
    ArticleRow,
    ArticleTermRow,
    AttemptRow,
    DeliveryRow,
    EventRow,
    DestinationStateRow,
    RejectionRow,
    SourceStateRow,
    utcnow,
)
