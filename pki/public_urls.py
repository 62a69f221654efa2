"""The public URLs of this installation that go into certificates (AIA, CDP), from ``PKI_BASE_URL``."""

from __future__ import annotations

from django.conf import settings


def default_ocsp_url() -> str:
    """This installation's OCSP responder (protocols.ocsp), which answers for every local CA."""
    return settings.PKI_BASE_URL.rstrip("/") + "/ocsp"
