from django.apps import AppConfig
from django.conf import settings


class RatingConfig(AppConfig):
    name = "rating"
    verbose_name = "Rating and leaderboards"

    def ready(self) -> None:
        from core.background import register_periodic

        # A new vote reaches the leaderboard within one refresh period plus the fit (< 5 s):
        # the job is a single aggregate query when no vote was counted since the last snapshot.
        register_periodic(
            "rating-refresh",
            "rating.refresh",
            float(getattr(settings, "RATING_REFRESH_SECONDS", 2.0)),
        )
        register_periodic(
            "rating-recompute-full",
            "rating.recompute_full",
            float(getattr(settings, "RATING_FULL_RECOMPUTE_SECONDS", 300.0)),
        )
