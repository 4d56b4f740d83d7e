"""Generating items: a manager picks K registered models and some prompts; one background task
per prompt asks every model through the arena's provider layer and stores the item.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from annotations.models import GenerationJob, Item, ItemResponse, Project
from annotations.services.access import require_role
from annotations.services.imports import MAX_PROMPT_CHARS
from arena.models import LLM
from arena.providers import ProviderError, complete_sync
from core.background import enqueue
from core.errors import ApplicationError

MAX_GENERATION_PROMPTS = 1000
KEEP_JOB_ERRORS = 100


def generation_start(
    *, project: Project, user: Any, prompts: list[str], llms: list[LLM]
) -> GenerationJob:
    """Create a job and enqueue one generation task per prompt (after commit). Managers only.

    ``llms`` are K different models, in response order; blank prompts are dropped.
    """
    require_role(project, user, role="manager")
    prompts = [p.strip() for p in prompts if p and p.strip()]
    if not prompts:
        raise ApplicationError("Give at least one prompt.", code="invalid")
    if len(prompts) > MAX_GENERATION_PROMPTS:
        raise ApplicationError(f"At most {MAX_GENERATION_PROMPTS} prompts per job.", code="invalid")
    if any(len(p) > MAX_PROMPT_CHARS for p in prompts):
        raise ApplicationError("A prompt is too long.", code="invalid")
    if len(llms) != project.k or len({m.pk for m in llms}) != len(llms):
        raise ApplicationError(f"Choose exactly {project.k} different models.", code="invalid")
    with transaction.atomic():
        job = GenerationJob.objects.create(
            project=project,
            prompts=prompts,
            llm_ids=[m.pk for m in llms],
            total=len(prompts),
            created_by=user,
        )
        for i in range(len(prompts)):
            enqueue("annotations.tasks.generate_item", job.pk, i)
    return job


def _generate(job: GenerationJob, prompt: str) -> tuple[list[tuple[str, LLM]], str]:
    """Ask each of the job's models in turn: (text, model) per response, or an error message
    at the first model that fails (then the prompt yields no item)."""
    llms = {m.pk: m for m in LLM.objects.select_related("provider").filter(pk__in=job.llm_ids)}
    responses: list[tuple[str, LLM]] = []
    for llm_id in job.llm_ids:
        llm = llms.get(llm_id)
        if llm is None:
            return responses, f"model {llm_id} no longer exists"
        try:
            completion = complete_sync(
                llm.provider.to_endpoint(),
                [{"role": "user", "content": prompt}],
                llm.generation_params(),
            )
        except ProviderError as exc:
            return responses, f"{llm.slug}: {type(exc).__name__}: {str(exc)[:200]}"
        if not completion.text.strip():
            return responses, f"{llm.slug}: empty response"
        responses.append((completion.text, llm))
    return responses, ""


def generation_run_one(*, job_id: int, index: int) -> None:
    """Generate the K responses of one prompt and store the item. Idempotent per (job, index).

    The provider calls run with no transaction open; only the final write is transactional. A
    failure is counted on the job and its message kept (the last 100); the job is done when
    every prompt has either an item or a failure.
    """
    job = GenerationJob.objects.select_related("project").get(pk=job_id)
    external_id = f"gen:{job.public_id}:{index}"
    if Item.objects.filter(project=job.project, external_id=external_id).exists():
        return
    prompt = job.prompts[index]
    responses, error = _generate(job, prompt)
    with transaction.atomic():
        locked = GenerationJob.objects.select_for_update().get(pk=job_id)
        if error:
            locked.failed += 1
            locked.errors = [*locked.errors, {"index": index, "message": error}][-KEEP_JOB_ERRORS:]
        else:
            item = Item.objects.create(
                project=job.project,
                external_id=external_id,
                prompt=prompt,
                source=Item.Source.GENERATED,
                metadata={"generation_job": str(job.public_id)},
            )
            ItemResponse.objects.bulk_create(
                [
                    ItemResponse(item=item, index=i, text=text, llm=llm, source_model=llm.slug)
                    for i, (text, llm) in enumerate(responses)
                ]
            )
            locked.done += 1
        if locked.done + locked.failed >= locked.total:
            locked.state = GenerationJob.State.DONE
        locked.save(update_fields=["done", "failed", "errors", "state"])
