# The pki web/worker image: one image, the command decides the role (gunicorn, celery worker, celery beat).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PKI_VAR_DIR=/var/lib/pki
RUN apt-get update && apt-get install -y --no-install-recommends openssl libsofthsm2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/pki --create-home pki
WORKDIR /app
COPY pyproject.toml README.md manage.py ./
COPY pki ./pki
COPY cryptotokens ./cryptotokens
COPY endentities ./endentities
COPY protocols ./protocols
COPY keybindings ./keybindings
COPY templates ./templates
COPY static ./static
RUN pip install --no-cache-dir . && DJANGO_SECRET_KEY=build PKI_MASTER_KEY=build python manage.py collectstatic --noinput
USER pki
EXPOSE 8000
CMD ["gunicorn", "pki.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
