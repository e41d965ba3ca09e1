FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY tasks ./tasks
COPY config ./config
RUN pip install --no-cache-dir . && useradd --create-home syndicate && mkdir -p /app/var && chown syndicate /app/var
USER syndicate
ENV SYNDICATE_CONFIG=/app/config/syndication.toml FEEDS_DIR=/app/var/feeds
CMD ["syndicate", "worker"]
