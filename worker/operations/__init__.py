"""What operator commands and processes both call: health checks, configuration reload,
and releasing in-flight work at shutdown. Importing this package is cheap; each module
imports what it needs."""
