# syntax=docker/dockerfile:1
# The Python CI tests with (.ci/run): what runs here is what was tested.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/bot.db

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
COPY bot/__init__.py bot/__init__.py
RUN pip install ".[postgres]" && pip uninstall -y musicbot

COPY bot ./bot
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app musicbot \
    && mkdir -p /app/data && chown musicbot /app/data

USER musicbot
VOLUME ["/app/data"]

# SIGTERM (docker stop) saves positions and keeps the Lavalink session resumable.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
