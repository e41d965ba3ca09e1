"""Where articles come from: WordPress, upstream RSS/Atom feeds and a drop folder."""

from worker.sources.base import Batch, Rejection, Source, SourceError  # noqa: F401
