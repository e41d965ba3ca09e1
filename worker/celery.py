"""The Celery application: Redis broker, JSON only, at-least-once delivery of tasks.

Tasks live in `tasks/`; they are thin and take only ids. The store, not the broker,
holds what must happen (delivery rows with their next attempt time); the broker only
carries work, and the periodic sweep re-enqueues anything the broker lost.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from config import Environment
from config.tunables import tunables

# One visibility timeout everywhere Celery reads it. A task not acked within it is
# redelivered; no task of ours runs that long, and long retry delays are kept in the
# store rather than as ETA messages (which Redis would redeliver again and again).
VISIBILITY_TIMEOUT = tunables().visibility_timeout
MAX_BROKER_COUNTDOWN = tunables().max_broker_countdown
SWEEP_INTERVAL = tunables().sweep_interval

QUEUES = ("watch", "feeds", "deliver", "maintenance")

# --- operations (beat lock and schedule keys in Redis; read by worker.operations.health) ---
REDBEAT_KEY_PREFIX = "syndicate:beat:"
BEAT_LOCK_TIMEOUT = tunables().beat_lock_timeout


def make_app() -> Celery:
    from worker import kombu_redis_fix

    # Without it a worker exits when Redis restarts under it (see the module).
    kombu_redis_fix.apply()
    env = Environment.from_env()
    app = Celery("syndicate", include=["tasks.feeds", "tasks.deliver", "tasks.maintenance", "tasks.watch", "tasks.republish"])
    transport_options = {
        "visibility_timeout": VISIBILITY_TIMEOUT,
        # Redis as broker: don't let a dead socket hang a worker forever.
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "health_check_interval": 30,
    }
    app.conf.update(
        broker_url=env.redis_url,
        broker_transport_options=transport_options,
        result_backend=None,
        result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        visibility_timeout=VISIBILITY_TIMEOUT,
        task_ignore_result=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        # At least once: ack after the task ran, requeue if the worker died under it,
        # and take one message at a time so a crash strands at most one.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Soft shutdown: on SIGTERM give running tasks time to finish before cold shutdown.
        worker_soft_shutdown_timeout=tunables().soft_shutdown,
        worker_enable_soft_shutdown_on_idle=True,
        broker_connection_retry_on_startup=True,
        # A lost broker connection is retried for ever, never a reason to exit (see
        # worker/kombu_redis_fix.py for what made the worker exit when Redis restarted).
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        # Tasks running when the broker connection drops finish: their sends land and are
        # recorded in the store. Cancelling them would cut requests mid-flight (answers lost,
        # duplicates) and count each cut as a worker killed mid-attempt (poison message).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_default_queue="deliver",
        # Each queue its own direct exchange and routing key, so a message lands in one queue only.
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        task_routes={
            "tasks.feeds.*": {"queue": "feeds"},
            "tasks.deliver.*": {"queue": "deliver"},
            "tasks.maintenance.*": {"queue": "maintenance"},
            "tasks.watch.*": {"queue": "watch"},
            "tasks.republish": {"queue": "maintenance"},
        },
        beat_schedule={
            "sweep-due-deliveries": {"task": "tasks.maintenance.sweep", "schedule": SWEEP_INTERVAL},
            "poll-due-sources": {"task": "tasks.watch.poll_due", "schedule": SWEEP_INTERVAL},
        },
        beat_schedule_filename=tunables().beat_schedule_file,
        timezone="UTC",
        enable_utc=True,
    )
    # --- operations: beat scheduler, reload (issue 10; docs/operations.md) -----------------
    # Exactly one active scheduler: celery-redbeat keeps the schedule in Redis and holds a
    # lock there. A second `syndicate beat` waits on the lock and takes over at once when
    # the first stops, or within BEAT_LOCK_TIMEOUT if it died.
    app.conf.update(
        beat_scheduler="worker.beat_scheduler:ResilientRedBeatScheduler",
        redbeat_redis_url=env.redis_url,
        redbeat_key_prefix=REDBEAT_KEY_PREFIX,
        redbeat_lock_timeout=BEAT_LOCK_TIMEOUT,
        # Beat's own Redis client: a dead socket must not hang the scheduler (or its lock).
        redbeat_redis_options={"socket_timeout": 30, "socket_connect_timeout": 10, "health_check_interval": 30},
        # beat wakes (and extends its lock) at least this often; well inside the lock's timeout.
        beat_max_loop_interval=max(1, min(5, BEAT_LOCK_TIMEOUT // 3)),
        # `syndicate reload` / SIGHUP replace pool processes once their current task is done.
        worker_pool_restarts=True,
    )
    # --- end operations ---------------------------------------------------------------
    return app


app = make_app()


def _connect_signals() -> None:
    from celery import signals

    # weak=False: these handlers are local functions; Celery's default weak reference would
    # let them be collected as soon as this function returns, and they would never run.
    @signals.worker_init.connect(weak=False)
    def _on_worker_init(**_):
        from worker.observability import configure_process

        configure_process()

    @signals.beat_init.connect(weak=False)
    def _on_beat_init(**_):
        from worker.observability import configure_process

        configure_process()

    # --- operations: quiet periodic-task lines, SIGHUP / `syndicate reload` -----------------
    @signals.worker_ready.connect(weak=False)
    def _on_worker_ready(sender=None, **_):
        from worker.logformat import quiet_periodic_tasks
        from worker.operations.reload import install_worker_reload

        quiet_periodic_tasks(entry["task"] for entry in app.conf.beat_schedule.values())
        install_worker_reload(sender)

    @signals.worker_process_init.connect(weak=False)
    def _quiet_pool_process(**_):
        # Pool processes are forked before the worker is ready; they log the "succeeded" lines.
        from worker.logformat import quiet_periodic_tasks

        quiet_periodic_tasks(entry["task"] for entry in app.conf.beat_schedule.values())

    @signals.beat_init.connect(weak=False)
    def _on_beat_ready(**_):
        from worker.logformat import quiet_periodic_tasks
        from worker.operations.reload import install_beat_reload

        quiet_periodic_tasks(entry["task"] for entry in app.conf.beat_schedule.values())
        install_beat_reload()
    # --- end operations ---------------------------------------------------------------

    @signals.worker_process_init.connect(weak=False)
    def _on_child_start(**_):
        # A forked pool child must not share the parent's database connections.
        from worker.store import reset_stores

        reset_stores()


_connect_signals()
