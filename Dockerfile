# Frontline Atlas: runs the API against DATABASE_URL (an SQLite file in a volume by default,
# or PostGIS: -e DATABASE_URL=postgresql+psycopg://user:pass@host:5432/db).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////var/lib/frontline/frontline.db

WORKDIR /srv/frontline
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY data ./data
# Editable install: the service reads migrations/ and data/ beside the package.
RUN pip install -e . && mkdir -p /var/lib/frontline && useradd --system frontline \
    && chown frontline /var/lib/frontline
USER frontline
VOLUME /var/lib/frontline
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["frontline", "serve", "--host", "0.0.0.0", "--port", "8000"]
