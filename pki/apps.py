from django.apps import AppConfig


class PkiConfig(AppConfig):
    name = "pki"
    verbose_name = "CA core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cryptotokens.services import use_statement_runner
        from cryptotokens.signals import crypto_token_event
        from cryptotokens.usage import register_usage_provider

        from . import db, receivers
        from .api import schema  # noqa: F401  (registers the OpenAPI authentication schemes)
        from .approval_actions import register as register_approval_actions
        from .auth.access import register_request_authenticator
        from .auth.oauth import actor_for_oauth_request
        from .views import auth  # noqa: F401  (connects the login/logout audit receivers at start-up)

        register_approval_actions()  # the executors of approved revocations and CA activations
        crypto_token_event.connect(receivers.audit_crypto_token_event, dispatch_uid="pki-audit-cryptotoken")
        register_usage_provider(receivers.cas_using_token)
        register_request_authenticator(actor_for_oauth_request)
        use_statement_runner(db.execute)

        from .management.config_groups import register_config_group
        from .management.config_oauth import OAuthConfigGroup

        register_config_group("oauth", OAuthConfigGroup())
        from .management.config_dump import DumpConfigGroup
        from .services.configdump_items import register_items as register_configdump_items

        register_configdump_items()  # CAs, certificate profiles, OAuth providers, roles in the configdump
        register_config_group("dump", DumpConfigGroup())
