from django.apps import AppConfig


class ScepConfig(AppConfig):
    """SCEP server (RFC 8894): aliases, operations, the public endpoints and the admin pages."""

    name = "protocols.scep"
    label = "scep"
    verbose_name = "SCEP"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pki.management.config_groups import register_config_group

        from . import approvals  # noqa: F401  (registers the executor of approved SCEP enrollments)
        from .cli import ScepConfigGroup

        register_config_group("scep", ScepConfigGroup())
        from .configdump import register_items as register_configdump_items

        register_configdump_items()  # SCEP aliases in the configdump
        from pki.bootstrap import register_step

        register_step(ensure_default_alias, order=60)
        from cryptotokens.usage import register_usage_provider

        register_usage_provider(aliases_using_token)
        from pki.services.profiles import register_profile_users

        register_profile_users(aliases_using_certificate_profile)  # named when its deletion is refused
        try:
            from pki.auth.resources import register_resources
        except ImportError:  # the resource registry is optional for this app
            return
        register_resources("Protocols", [("/protocol/scep", "SCEP enrollment (every alias)")])


def ensure_default_alias(result) -> None:
    """EJBCA ships the alias ``scep`` (CA mode, its defaults), so ``.../apply/scep/pkiclient.exe`` answers on
    a new installation: created by ``init`` when missing, never changed afterwards."""
    from pki.auth.access import Actor

    from .models import ScepAlias
    from .services import add_alias

    if not ScepAlias.objects.filter(name="scep").exists():
        add_alias(Actor.system_actor("init"), "scep")
        result.created.append("SCEP alias scep (CA mode)")


def aliases_using_token(token, alias: str | None) -> list[str]:
    """SCEP aliases whose RA key pair lives on ``token`` (optionally: under ``alias``): the token layer names
    them when refusing to delete the token or the key."""
    from .models import ScepAlias

    qs = ScepAlias.objects.filter(ra_crypto_token=token)
    if alias is not None:
        qs = qs.filter(ra_key_alias=alias)
    return [f"SCEP alias '{name}'" for name in qs.values_list("name", flat=True)]


def aliases_using_certificate_profile(profile) -> list[str]:
    """SCEP aliases that issue RA-mode certificates under ``profile``."""
    from .models import ScepAlias

    return [f"SCEP alias '{name}'" for name in ScepAlias.objects.filter(ra_certificate_profile=profile)
            .values_list("name", flat=True)]
