"""WSGI entry point (gunicorn pki.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki.settings")
application = get_wsgi_application()
