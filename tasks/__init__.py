"""Celery tasks: thin wrappers that take ids, load what they need and call into `worker/`."""
