from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Annotations"

    def ready(self) -> None:
        from core.background import register_periodic

        # Claims expire stale locks of their own project lazily; this sweep keeps the counters
        # honest for projects nobody is claiming from.
        register_periodic("annotations-expire", "annotations.tasks.expire_assignments", 60)
