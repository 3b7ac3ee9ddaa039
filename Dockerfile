# Production image: gunicorn for web, the same image runs the Celery worker and beat.
FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production
WORKDIR /app
RUN useradd --create-home --uid 1000 chungtay
COPY requirements/base.txt requirements/base.txt
RUN pip install -r requirements/base.txt
COPY --chown=chungtay:chungtay . .
# Static files and compiled catalogues are built into the image; the build needs no secrets.
RUN DJANGO_SETTINGS_MODULE=config.settings.local DATABASE_URL=postgres://build@localhost/build \
    python manage.py collectstatic --noinput && \
    DJANGO_SETTINGS_MODULE=config.settings.local DATABASE_URL=postgres://build@localhost/build \
    python manage.py compile_translations
USER chungtay
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
