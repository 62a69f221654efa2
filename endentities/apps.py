from django.apps import AppConfig


class EndEntitiesConfig(AppConfig):
    name = "endentities"
    verbose_name = "End entities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pki.bootstrap import register_step

        from .services import ensure_empty_profile

        register_step(lambda result: ensure_empty_profile(result.created), order=50)
