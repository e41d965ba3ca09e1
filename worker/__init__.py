"""The syndication worker: the Celery application and the domain code it runs.

`celery -A worker worker` finds the application here.
"""

from worker.celery_app import app  # noqa: F401
