"""One transport class per destination type, behind one interface."""

from worker.transports.base import Outcome, TransportError  # noqa: F401
