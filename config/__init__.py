"""Settings code and the example configuration (`syndication.example.toml`)."""

from config.settings import (  # noqa: F401
    EVENT_TYPES,
    ChannelConfig,
    ConfigError,
    ConfigProblem,
    Environment,
    FeedConfig,
    PartnerConfig,
    SiteConfig,
    SourceConfig,
    SyndicationConfig,
    load_config,
    parse_config,
    parse_duration,
)
