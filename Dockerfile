# syntax=docker/dockerfile:1
# Multi-stage: wheels are built in a throwaway stage; the runtime image has no compiler and runs
# as an unprivileged user.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=agentplatform.settings \
    VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app . /app
# collectstatic needs settings but no database: give it throwaway values for this one command.
RUN DJANGO_ENV=production ALLOWED_HOSTS=localhost TRUSTED_PROXY_COUNT=0 \
    SECRET_KEY=collectstatic-only-secret-key-not-used-at-runtime-0000000000 \
    JWT_SIGNING_KEY=collectstatic-only-jwt-key-not-used-at-runtime-1111111111 \
    DATABASE_URL=sqlite:////tmp/collectstatic.db REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/var/media && chown -R app:app /app/var /app/staticfiles
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["gunicorn", "agentplatform.wsgi:application", "-c", "gunicorn.conf.py"]
