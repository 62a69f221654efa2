"""WSGI entry point (gunicorn pki.wsgi): Django, with the OCSP responder's paths answered before its handler
(protocols.ocsp.endpoint)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki.settings")
application = get_wsgi_application()

from protocols.ocsp.endpoint import route  # noqa: E402 - after Django is set up

application = route(application)
