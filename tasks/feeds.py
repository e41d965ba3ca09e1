from worker import runtime
from worker.celery_app import app
from worker.feeds import rebuild


@app.task(name="tasks.feeds.rebuild_feed", bind=True, max_retries=None)
def rebuild_feed(self, name: str) -> None:
    try:
        rebuild(runtime.store(), runtime.config(), runtime.environment().feeds_dir, name)
    except OSError as exc:
        # A full disk or a permissions slip: the rows stay claimed until their lease
        # ends and the sweep retries, but try again sooner too.
        raise self.retry(exc=exc, countdown=10)
