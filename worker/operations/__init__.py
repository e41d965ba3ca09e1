"""What operator commands, tasks and processes both call: replay, republish, destinations,
health checks, configuration reload, and releasing in-flight work at shutdown. Importing
this package is cheap; each module imports what it needs."""
