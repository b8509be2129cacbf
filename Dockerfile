# The tracker image for the compose stack: `tracker worker` and `tracker ticker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRACKER_DATA=/data

WORKDIR /app
# Dependencies first, from the lock (pinned, hashed), so a source change reuses this layer.
COPY pyproject.toml requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
# Then the checkout (see .dockerignore): the packages, and dashboards/ for
# `tracker dashboards push`, which reads ./dashboards from this directory.
COPY . .
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 tracker \
    && mkdir -p /data \
    && chown tracker /data

USER tracker
VOLUME ["/data"]
CMD ["tracker", "--help"]
