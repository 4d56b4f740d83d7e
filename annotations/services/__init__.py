"""Writes of the annotation workflow, one function per use case, each owning its transaction.

One module per concern; this package re-exports their public names, so callers write
``from annotations.services import assignment_claim`` (or ``services.assignment_claim``):

- ``projects``: creating a project;
- ``invitations``: one-use links that add annotators and reviewers;
- ``imports``: items from an uploaded file or sampled from arena battles;
- ``generation``: items whose responses registered models generate (one task per prompt);
- ``queue`` (with ``queue_postgresql``): claiming an item, expiring stale locks;
- ``answers``: reading and checking an annotator's answer (no writes);
- ``submissions``: saving a draft, submitting, skipping;
- ``review``: approving or rejecting submitted work.

Roles are checked by ``access.require_role``; errors are ``core.errors.ApplicationError``s.
"""

from annotations.services.answers import (
    Answer,
    AnswerInput,
    InvalidAnswer,
    answer_clean,
    answer_from_post,
    answer_input,
)
from annotations.services.generation import (
    MAX_GENERATION_PROMPTS,
    generation_run_one,
    generation_start,
)
from annotations.services.imports import (
    MAX_IMPORT_LINES,
    MAX_PROMPT_CHARS,
    MAX_RESPONSE_CHARS,
    ImportInvalid,
    arena_sample,
    items_import,
    parse_gold,
)
from annotations.services.invitations import invitation_accept, invitation_create
from annotations.services.projects import may_create_projects, project_create
from annotations.services.queue import assignment_claim, assignments_expire
from annotations.services.review import annotation_review
from annotations.services.submissions import (
    annotation_save_draft,
    annotation_submit,
    assignment_skip,
)

__all__ = [
    "MAX_GENERATION_PROMPTS",
    "MAX_IMPORT_LINES",
    "MAX_PROMPT_CHARS",
    "MAX_RESPONSE_CHARS",
    "Answer",
    "AnswerInput",
    "ImportInvalid",
    "InvalidAnswer",
    "annotation_review",
    "annotation_save_draft",
    "annotation_submit",
    "answer_clean",
    "answer_from_post",
    "answer_input",
    "arena_sample",
    "assignment_claim",
    "assignment_skip",
    "assignments_expire",
    "generation_run_one",
    "generation_start",
    "invitation_accept",
    "invitation_create",
    "items_import",
    "may_create_projects",
    "parse_gold",
    "project_create",
]
