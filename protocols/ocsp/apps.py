from django.apps import AppConfig


class OcspConfig(AppConfig):
    name = "protocols.ocsp"
    label = "ocsp"
    verbose_name = "OCSP responder"
