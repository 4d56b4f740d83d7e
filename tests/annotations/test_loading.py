"""Loading items from registered models (Celery task through the provider layer, live progress)
and from arena battles."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotations import services
from annotations.models import GenerationJob, Item
from annotations.tasks import generate_item
from arena.models import LLM, Provider
from arena.models import Response as ArenaResponse
from arena.providers import DEMO_MODELS
from core.errors import ApplicationError
from tests.annotations import factories as f
from tests.arena.factories import battle_with_turn, voter
from tests.fakes.fake_llm import Behaviour, FakeLLMServer

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def _demo_llms(n: int = 2) -> list[LLM]:
    provider = Provider.objects.create(
        name="demo-annot", kind="demo", options={"tokens_per_s": 0, "first_token_delay_s": 0}
    )
    return [
        LLM.objects.create(
            provider=provider,
            slug=spec.slug,
            display_name=spec.display_name,
            provider_model_id=spec.slug,
        )
        for spec in DEMO_MODELS[:n]
    ]


def _progress(c: Client, job: GenerationJob) -> str:
    url = reverse("annotations:job", args=[job.project.slug, job.public_id])
    r = c.get(url, HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    return r.content.decode()


def test_generation_runs_one_celery_task_per_prompt_and_the_progress_fragment_follows(
    django_capture_on_commit_callbacks,
) -> None:
    owner = f.user()
    p = f.project(k=2, label_schema=[], owner=owner)
    llms = _demo_llms(2)
    c = _client(owner)
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        r = c.post(
            reverse("annotations:generate", args=[p.slug]),
            {"prompts": "Why is the sky blue?\nExplain tides\nName three rivers",
             "models": [m.pk for m in llms]},
        )  # fmt: skip
    job = GenerationJob.objects.get(project=p)
    assert r.status_code == 302 and r["Location"].endswith(f"/jobs/{job.public_id}/")
    assert len(enqueued) == 3 and job.total == 3  # one task per prompt, sent after commit
    page = _progress(c, job)
    assert "0 generated, 0 failed, of 3 prompts" in page and 'hx-trigger="every 1s"' in page

    assert generate_item.apply(args=(job.pk, 0)).successful()
    page = _progress(c, job)
    assert "1 generated, 0 failed, of 3 prompts" in page and "hx-get" in page
    for i in (1, 2):
        assert generate_item.apply(args=(job.pk, i)).successful()
    page = _progress(c, job)
    assert "3 generated, 0 failed, of 3 prompts · finished" in page and "hx-get" not in page

    items = list(Item.objects.filter(project=p).order_by("id"))
    assert [i.prompt for i in items] == [
        "Why is the sky blue?",
        "Explain tides",
        "Name three rivers",
    ]
    for item in items:
        assert item.source == Item.Source.GENERATED
        rs = list(item.responses.order_by("index"))
        assert [r.llm_id for r in rs] == [m.pk for m in llms]
        assert [r.source_model for r in rs] == [m.slug for m in llms]
        assert all(r.text.strip() for r in rs) and rs[0].text != rs[1].text
    # a redelivered task finds its item and changes nothing
    assert generate_item.apply(args=(job.pk, 0)).successful()
    job.refresh_from_db()
    assert (job.done, job.failed, job.state) == (3, 0, "done") and Item.objects.count() == 3


def test_a_failing_provider_is_reported_and_the_job_finishes() -> None:
    owner = f.user()
    p = f.project(k=2, label_schema=[], owner=owner)
    (demo,) = _demo_llms(1)
    with FakeLLMServer() as server:
        server.behave("fake-broken", Behaviour(fault="status", status=500, fail_first=1))
        provider = Provider.objects.create(
            name="fake-annot", kind="openai", base_url=server.openai_base_url,
            connect_timeout=2, first_token_timeout=5, total_timeout=20, max_retries=0,
        )  # fmt: skip
        broken = LLM.objects.create(
            provider=provider,
            slug="fake-broken",
            display_name="Fake",
            provider_model_id="fake-broken",
        )
        job = services.generation_start(
            project=p, user=owner, prompts=["first", "second"], llms=[demo, broken]
        )
        assert generate_item.apply(args=(job.pk, 0)).successful()  # the fake answers 500
        assert generate_item.apply(args=(job.pk, 1)).successful()  # then behaves
        assert server.count(model="fake-broken") == 2
    job.refresh_from_db()
    assert (job.done, job.failed, job.state, job.percent) == (1, 1, "done", 100)
    (error,) = job.errors
    assert error["index"] == 0 and error["message"].startswith("fake-broken:")
    page = _progress(_client(owner), job)
    assert "1 generated, 1 failed, of 2 prompts · finished" in page
    assert "prompt 1: fake-broken:" in page and "hx-get" not in page  # no endless polling
    (item,) = Item.objects.filter(project=p)
    assert item.prompt == "second" and item.responses.count() == 2


def test_generation_is_refused_to_non_managers_and_checks_the_models() -> None:
    ann, outsider, owner = f.user(), f.user(), f.user()
    p = f.project(k=2, label_schema=[], annotators=[ann], owner=owner)
    llms = _demo_llms(3)
    for user in (ann, outsider):
        with pytest.raises(ApplicationError):
            services.generation_start(project=p, user=user, prompts=["x"], llms=llms[:2])
    with pytest.raises(ApplicationError, match="exactly 2"):
        services.generation_start(project=p, user=owner, prompts=["x"], llms=llms)
    r = _client(owner).post(
        reverse("annotations:generate", args=[p.slug]),
        {"prompts": "x", "models": [m.pk for m in llms]},
    )
    assert r.status_code == 200 and "Choose exactly 2 models." in r.content.decode()
    job = services.generation_start(project=p, user=owner, prompts=["x"], llms=llms[:2])
    url = reverse("annotations:job", args=[p.slug, job.public_id])
    for user in (ann, outsider):
        assert _client(user).get(url).status_code == 404
        assert _client(user).get(url, HTTP_HX_REQUEST="true").status_code == 404
    assert GenerationJob.objects.count() == 1


def test_arena_sampling_takes_finished_turns_once_and_skips_unfinished_ones() -> None:
    owner = f.user()
    p = f.project(k=2, label_schema=[], owner=owner)
    a, b = _demo_llms(2)
    done = [battle_with_turn(a, b, voter=voter(), text=f"reply{i}") for i in range(3)]
    streaming = battle_with_turn(a, b, voter=voter(), states=("done", "streaming"))
    failed = battle_with_turn(a, b, voter=voter(), states=("failed", "done"))
    assert services.arena_sample(project=p, user=owner, count=100) == 3
    items = {i.external_id: i for i in Item.objects.filter(project=p)}
    assert set(items) == {f"arena:{bt.public_id}:0" for bt in done}
    for n, bt in enumerate(done):
        item = items[f"arena:{bt.public_id}:0"]
        assert item.source == Item.Source.ARENA and item.prompt == "hello there"
        rs = list(item.responses.order_by("index"))
        assert [r.text for r in rs] == [f"reply{n} a", f"reply{n} b"]
        assert [r.llm_id for r in rs] == [a.pk, b.pk]
    assert services.arena_sample(project=p, user=owner, count=100) == 0  # each turn at most once
    # the streaming turn finishes: now it is sampled (once); the failed one never
    ArenaResponse.objects.filter(turn__battle=streaming, side="b").update(
        state="done", text="late b"
    )
    assert services.arena_sample(project=p, user=owner, count=100) == 1
    assert Item.objects.filter(project=p, external_id=f"arena:{streaming.public_id}:0").exists()
    assert not Item.objects.filter(external_id=f"arena:{failed.public_id}:0").exists()
    assert services.arena_sample(project=p, user=owner, count=100) == 0
    assert Item.objects.filter(project=p).count() == 4


def test_arena_sampling_respects_count_k_and_roles() -> None:
    owner, ann, outsider = f.user(), f.user(), f.user()
    p = f.project(k=2, label_schema=[], owner=owner, annotators=[ann])
    a, b = _demo_llms(2)
    for _ in range(5):
        battle_with_turn(a, b, voter=voter())
    assert services.arena_sample(project=p, user=owner, count=2) == 2
    with pytest.raises(ApplicationError, match="K to 2"):
        services.arena_sample(project=f.project(k=3, owner=owner), user=owner, count=5)
    for user in (ann, outsider):
        with pytest.raises(ApplicationError):
            services.arena_sample(project=p, user=user, count=5)
    url = reverse("annotations:generate", args=[p.slug])
    body = {"action": "sample-arena", "count": "10"}
    assert _client(outsider).post(url, body).status_code == 404
    assert _client(ann).post(url, body).status_code == 404
    r = _client(owner).post(url, body, follow=True)
    assert r.status_code == 200 and "Sampled 3 items from arena battles." in r.content.decode()
    assert Item.objects.filter(project=p).count() == 5
