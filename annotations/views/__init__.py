"""HTML pages of the annotation app, by audience: ``annotator`` (queue, task page, invitation),
``team`` (dashboard, items, review) and ``manage`` (project set-up and loading items); the
access helpers they share are in ``common``. ``annotations.urls`` names the views from here.
"""

from annotations.views.annotator import invitation, project_next, queue, task
from annotations.views.manage import (
    generate,
    import_items,
    invitations,
    job,
    project_new,
)
from annotations.views.team import dashboard, item_detail, items, review

__all__ = [
    "dashboard",
    "generate",
    "import_items",
    "invitation",
    "invitations",
    "item_detail",
    "items",
    "job",
    "project_new",
    "project_next",
    "queue",
    "review",
    "task",
]
