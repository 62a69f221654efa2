from django.apps import AppConfig


class CryptoTokensConfig(AppConfig):
    name = "cryptotokens"
    verbose_name = "Crypto tokens"
    default_auto_field = "django.db.models.BigAutoField"
