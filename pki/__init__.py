"""pki: certificate authority and registration authority on Django."""

from .celery import app as celery_app

__all__ = ["celery_app"]
