# The pki image: one image for every process; the command picks the role (gunicorn, celery worker,
# celery beat, manage.py). See deploy/README.md.
FROM python:3.11-slim

# PYTHONPATH: run the code in /app (it carries the templates and static files next to the packages),
# not the copy pip put into site-packages.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PKI_VAR_DIR=/var/lib/pki

# SoftHSM2's PKCS#11 module is the default entry of PKCS11_LIBRARIES.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsofthsm2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --home-dir /var/lib/pki --create-home --shell /usr/sbin/nologin pki

WORKDIR /app
COPY pyproject.toml manage.py ./
COPY pki ./pki
COPY cryptotokens ./cryptotokens
COPY endentities ./endentities
COPY protocols ./protocols
COPY keybindings ./keybindings
COPY peers ./peers
COPY templates ./templates
COPY static ./static
COPY deploy/docker-entrypoint.sh /usr/local/bin/pki-entrypoint

# Static files are collected into the image and served by whitenoise from every web replica. The
# throw-away keys only let the settings load; the check makes sure no key file ends up in the image.
RUN pip install . \
    && DJANGO_SECRET_KEY=collectstatic-only PKI_MASTER_KEY=collectstatic-only \
       python manage.py collectstatic --noinput -v0 \
    && test ! -e /var/lib/pki/master.key \
    && chmod 0755 /usr/local/bin/pki-entrypoint

USER pki
EXPOSE 8000
ENTRYPOINT ["pki-entrypoint"]
# Request limits in pki/gunicorn_conf.py; run it behind deploy/nginx/pki.conf, never published directly.
CMD ["gunicorn", "pki.wsgi", "-c", "python:pki.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--worker-tmp-dir", "/dev/shm", "--access-logfile", "-"]
