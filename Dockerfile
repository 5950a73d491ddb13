# Frontdesk production image: slim Python, locked dependencies, non-root, health-checked.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH="/opt/venv/bin:$PATH" \
    PORT=8080

WORKDIR /app
RUN pip install --no-cache-dir uv
COPY pyproject.toml uv.lock .python-version ./
RUN uv sync --frozen --no-dev --no-install-project && rm -rf /root/.cache

COPY . .
RUN useradd --system --uid 10001 --home-dir /app frontdesk \
    && mkdir -p /app/data && chown -R frontdesk /app/data
USER frontdesk

EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2)"
STOPSIGNAL SIGTERM
# One process per container: the platform scales with containers (docs/scaling.md).
CMD ["python", "main.py", "serve", "--workers", "1"]
