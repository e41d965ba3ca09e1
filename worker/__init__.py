"""The syndication worker's domain code. Importing it builds no Celery app: the app
is `worker.celery.app` (where `celery -A worker` finds it), and domain code schedules
work only through `worker.enqueue`, which `tasks/` implements."""
