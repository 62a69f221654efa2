from django.apps import AppConfig


class KeyBindingsConfig(AppConfig):
    name = "keybindings"
    verbose_name = "Remote authenticators (internal key bindings)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cryptotokens import forms as token_forms
        from cryptotokens.backends import azure
        from cryptotokens.usage import register_usage_provider
        from pki.services.health import register_health_source

        from .health import binding_health
        from .services import authentication_binding_choices, bindings_using_token, credentials_pem
        from .usage import register_builtin_users

        # Azure Key Vault tokens may log in with a key binding's certificate and key.
        azure.register_key_binding_credentials(credentials_pem)
        # ... and the token forms offer the authentication bindings to pick from.
        token_forms.DYNAMIC_CHOICES["key_binding"] = authentication_binding_choices
        # A token or key pair a binding uses cannot be deleted.
        register_usage_provider(bindings_using_token)
        # Its users (Azure logins, SCEP Intune aliases, peers) are asked before it is deleted.
        register_builtin_users()
        # Its bindings' certificates and tokens join the dashboard's health list.
        register_health_source(binding_health)
