# syntax=docker/dockerfile:1
# The syndication worker image: every `syndicate` process of docker-compose.yml runs from it.
#
# Two stages: wheels are built in `build` (which may need compilers), and the final image
# installs them without any build tools. Dependencies are a layer of their own, rebuilt
# only when pyproject.toml changes, not on every code change.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# 1. The dependencies alone, from pyproject.toml.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > requirements.txt \
 && pip wheel --wheel-dir /wheels/deps -r requirements.txt
# 2. The application itself.
COPY README.md ./
COPY config ./config
COPY worker ./worker
COPY tasks ./tasks
RUN pip wheel --no-deps --wheel-dir /wheels/app .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN useradd --system --uid 10001 --create-home --home-dir /home/syndicate syndicate \
 && mkdir -p /app/var/feeds /app/var/incoming /app/config \
 && chown -R syndicate:syndicate /app/var
# Dependencies first (cached while only the code changes), then the application.
COPY --from=build /wheels/deps /wheels/deps
RUN pip install --no-index /wheels/deps/*.whl && rm -rf /wheels/deps
COPY --from=build /wheels/app /wheels/app
RUN pip install --no-index --no-deps /wheels/app/*.whl && rm -rf /wheels/app
COPY config/syndication.example.toml /app/config/syndication.example.toml
WORKDIR /app
USER syndicate
ENV SYNDICATE_CONFIG=/app/config/syndication.toml FEEDS_DIR=/app/var/feeds
CMD ["syndicate", "worker"]
