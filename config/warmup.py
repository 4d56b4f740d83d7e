"""Work a web process does once at start instead of in its first requests.

Without it, the first request in each fresh gunicorn or uvicorn worker that enqueues a job pays
for importing every app's ``tasks`` module (the rating tasks pull in scipy: seconds of CPU), and
the first page pays for building the URL resolver and compiling its templates. Under a burst
right after a deploy or a restart that is seconds of latency for the first users.

Then everything built so far (modules, templates, the resolver: a few hundred thousand objects
that live as long as the process) is moved out of the garbage collector's reach with
``gc.freeze()``. Otherwise every full collection walks them all: measured on the arena bench, a
full collection stalled a WebSocket worker's event loop for 350-630 ms in the middle of a burst
of battle starts, and every page on that worker waited.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

TEMPLATES = (
    "base.html",
    "home.html",
    "arena/index.html",
    "arena/battle.html",
    "rating/leaderboard.html",
)


def warm_up() -> None:
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template
    from django.urls import get_resolver
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("tasks")
    get_resolver().url_patterns  # noqa: B018 - builds the resolver (imports every view module)
    for name in TEMPLATES:
        try:
            get_template(name)
        except TemplateDoesNotExist:
            log.warning("warm-up: no template %s", name)
    gc.collect()
    gc.freeze()
