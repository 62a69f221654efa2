from django.apps import AppConfig


def _profile_rules():
    """Per end entity profile access rules (``/endentityprofilesrules/<id>/<action>``) for the roles editor."""
    from pki.auth.resources import EE_PROFILE_ACTIONS, EE_PROFILE_GROUP, object_rules

    from .models import EndEntityProfile

    for pk, name in EndEntityProfile.objects.order_by("pk").values_list("pk", "name"):
        yield from object_rules(EE_PROFILE_GROUP, f"/endentityprofilesrules/{pk}", f"End entity profile {name}",
                                EE_PROFILE_ACTIONS, order=40)


def _profile_names(ids: set[int]) -> dict[int, str]:
    from .models import EndEntityProfile

    return dict(EndEntityProfile.objects.filter(pk__in=ids).values_list("pk", "name"))


class EndEntitiesConfig(AppConfig):
    name = "endentities"
    verbose_name = "End entities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pki.api.v2.endentity_link import register_end_entity_profile_link
        from pki.audit import register_subject_redaction
        from pki.auth.resources import register_resource_provider
        from pki.bootstrap import register_step

        from . import approvals
        from .services import ensure_empty_profile
        from .subject import redaction_for_username

        approvals.register()  # the executors of approved end entity actions and REST finalize
        register_step(lambda result: ensure_empty_profile(result.created), order=50)
        register_subject_redaction(redaction_for_username)
        register_resource_provider("endentityprofiles", _profile_rules, order=40)
        from .api_v2 import ProfileLink

        register_end_entity_profile_link(ProfileLink())  # the v2 certificate search's END_ENTITY_PROFILE
        from .configdump import register_items as register_configdump_items

        register_configdump_items()  # end entity profiles in the configdump
        from pki.api.lookups import register_end_entity_profile_names, register_end_entity_profile_resolver

        register_end_entity_profile_names(_profile_names)  # end_entity_profile of certificate responses
        register_end_entity_profile_resolver(ProfileLink().profile_id)  # v1 search's END_ENTITY_PROFILE
        from pki.services.profiles import register_profile_users

        from .usage import certificate_profile_users

        register_profile_users(certificate_profile_users)  # a certificate profile in use is not deleted
