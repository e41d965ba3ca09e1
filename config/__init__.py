"""Loading and validating the syndication configuration.

The settings models (`config.settings`, on pydantic) are imported when one of their names
is first used, not with the package: `config.environment` (where Redis, the database and
Sentry are) is all a command such as `syndicate status` needs, and importing pydantic and
the models would cost it a tenth of a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.environment import Environment  # noqa: F401
from config.lazy_exports import lazy_getattr

# name → the module that defines it (all re-exported here, as before).
_LAZY = {name: "config.settings" for name in (
    "EVENT_TYPES", "ChannelConfig", "ConfigError", "ConfigProblem", "FeedConfig", "PartnerConfig",
    "SiteConfig", "SourceConfig", "SyndicationConfig", "load_config", "parse_config", "parse_duration",
)}

__all__ = ["Environment", *_LAZY]

if TYPE_CHECKING:
    from config.settings import (  # noqa: F401
        EVENT_TYPES,
        ChannelConfig,
        ConfigError,
        ConfigProblem,
        FeedConfig,
        PartnerConfig,
        SiteConfig,
        SourceConfig,
        SyndicationConfig,
        load_config,
        parse_config,
        parse_duration,
    )


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
