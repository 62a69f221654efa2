"""WSGI entry point (gunicorn pki.wsgi): Django, wrapped by the applications named in ``PKI_WSGI_ROUTES`` (as
``MIDDLEWARE`` names its classes), which answer their own paths before Django's handler: the OCSP responder's
(protocols.ocsp.endpoint)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402 - after Django is set up
from django.utils.module_loading import import_string  # noqa: E402

for _route in settings.PKI_WSGI_ROUTES:
    application = import_string(_route)(application)
