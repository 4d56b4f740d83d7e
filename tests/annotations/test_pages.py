"""Project set-up pages (create, invitations), the ranking's tie markup, and pinned query counts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from annotations import services
from annotations.models import Invitation, Project
from core.errors import ApplicationError
from tests.annotations import factories as f

pytestmark = pytest.mark.django_db

GOOD = {
    "name": "Helpfulness study",
    "guidelines": "# Rank\nPrefer **helpful** answers.",
    "task_type": "rank",
    "label_schema": '[{"name": "helpfulness", "kind": "likert", "min": 1, "max": 7}]',
    "k": "3",
    "overlap": "2",
    "lock_ttl_seconds": "900",
    "gold_rate": "0.1",
    "blind": "on",
}


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_staff_create_a_project_and_become_its_owner() -> None:
    staff = f.user(is_staff=True)
    c = _client(staff)
    page = c.get(reverse("annotations:project-new"))
    assert page.status_code == 200 and b"Lock TTL" in page.content
    r = c.post(reverse("annotations:project-new"), GOOD)
    p = Project.objects.get()
    assert r.status_code == 302 and r["Location"] == reverse(
        "annotations:invitations", args=[p.slug]
    )
    assert (p.owner, p.slug, p.k, p.overlap, p.lock_ttl_seconds, p.gold_rate, p.blind) == (
        staff,
        "helpfulness-study",
        3,
        2,
        900,
        0.1,
        True,
    )
    assert p.label_schema == [{"name": "helpfulness", "kind": "likert", "min": 1, "max": 7}]
    assert c.get(reverse("annotations:dashboard", args=[p.slug])).status_code == 200
    c.post(reverse("annotations:project-new"), GOOD)  # same name: a new slug
    assert set(Project.objects.values_list("slug", flat=True)) == {
        "helpfulness-study", "helpfulness-study-2"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "This field is required."),
        (
            {"task_type": "pairwise", "k": "3"},
            "A pairwise project has exactly 2 responses per item.",
        ),
        ({"task_type": "rate", "label_schema": "[]"}, "A rating project needs a likert label."),
        ({"label_schema": "[{"}, "Enter a valid JSON."),
        ({"label_schema": '[{"name": "x", "kind": "stars"}]'}, "&#x27;kind&#x27; must be one of"),
        ({"k": "11"}, "less than or equal to 10"),
        ({"overlap": "0"}, "greater than or equal to 1"),
        ({"lock_ttl_seconds": "5"}, "greater than or equal to 30"),
        ({"gold_rate": "1.5"}, "less than or equal to 1.0"),
    ],
)
def test_project_form_shows_validation_errors_and_creates_nothing(change, message) -> None:
    r = _client(f.user(is_staff=True)).post(reverse("annotations:project-new"), {**GOOD, **change})
    assert r.status_code == 400
    assert message in r.content.decode() and 'role="alert"' in r.content.decode()
    assert not Project.objects.exists()


def test_creating_projects_needs_staff_or_the_permission() -> None:
    outsider, permitted = f.user(), f.user()
    permitted.user_permissions.add(Permission.objects.get(codename="add_project"))
    url = reverse("annotations:project-new")
    c = _client(outsider)
    assert c.get(url).status_code == 404 and c.post(url, GOOD).status_code == 404
    assert b"project-new" not in c.get(reverse("annotations:queue")).content
    assert Client().get(url).status_code == 302  # anonymous: to the login page
    assert not Project.objects.exists()
    assert _client(permitted).post(url, GOOD).status_code == 302
    assert Project.objects.get().owner == permitted


def test_owner_creates_and_copies_invitation_links_which_work_once() -> None:
    owner, joiner, late = f.user(), f.user(), f.user()
    p = f.project(owner=owner)
    c = _client(owner)
    url = reverse("annotations:invitations", args=[p.slug])
    assert c.get(url).status_code == 200
    r = c.post(url, {"email": "rater@example.org"})
    inv = Invitation.objects.get()
    assert r.status_code == 302 and r["Location"].endswith(f"#inv-{inv.token}")
    c.post(url, {"as_reviewer": "on"})
    page = c.get(url).content.decode()
    link = f"http://testserver/annotate/invite/{inv.token}/"
    assert f'value="{link}"' in page and 'data-copy="#link-' in page and "reviewer" in page
    assert c.post(url, {"email": "not-an-email"}).status_code == 400
    jc = _client(joiner)
    assert jc.get(link).status_code == 200
    assert jc.post(link).status_code == 302
    assert p.annotators.filter(pk=joiner.pk).exists()
    assert _client(late).post(link).status_code == 302  # refused with a message, not joined
    assert not p.annotators.filter(pk=late.pk).exists()
    page = c.get(url).content.decode()
    assert f"joined: {joiner.username}" in page and f'value="{link}"' not in page


def test_invitations_are_refused_to_everyone_but_managers() -> None:
    ann, rev, outsider = f.user(), f.user(), f.user()
    p = f.project(annotators=[ann], reviewers=[rev])
    url = reverse("annotations:invitations", args=[p.slug])
    for user in (ann, rev, outsider):
        c = _client(user)
        assert c.get(url).status_code == 404 and c.post(url, {}).status_code == 404
    assert Client().get(url).status_code == 302
    assert not Invitation.objects.exists()
    with pytest.raises(ApplicationError):
        services.invitation_create(project=p, user=rev)


def test_ranking_chips_carry_a_place_badge_and_the_keys_list_is_unchanged() -> None:
    ann = f.user()
    p = f.project(annotators=[ann])
    f.items(p, 1)
    a = services.assignment_claim(project=p, annotator=ann)
    page = _client(ann).get(reverse("annotations:task", args=[a.public_id])).content.decode()
    assert page.count('class="rank-pos"') == 3
    keys = page[page.index('aria-label="Keyboard shortcuts"') :]
    for text in ("pick response", "move it up / down", "tie with the one above", "skip", "submit"):
        assert text in keys


# --- pinned query counts ---------------------------------------------------------------------------


@pytest.fixture
def busy_project():
    """A project with several annotators, gold, submitted and reviewed work."""
    owner = f.user()
    anns = [f.user() for _ in range(4)]
    p = f.project(owner=owner, annotators=anns, overlap=3)
    f.items(p, 6)
    f.items(p, 2, gold=True)
    for u in anns:
        for _ in range(3):
            a = services.assignment_claim(project=p, annotator=u)
            if a is None:
                break
            services.annotation_submit(
                assignment=a, annotator=u, data=f.answer(a.item, [[0], [1, 2]])
            )
    return p, owner


def test_dashboard_query_count_is_pinned(busy_project, django_assert_max_num_queries) -> None:
    p, owner = busy_project
    c = _client(owner)
    with django_assert_max_num_queries(10):
        assert c.get(reverse("annotations:dashboard", args=[p.slug])).status_code == 200


def test_item_browser_query_counts_are_pinned(busy_project, django_assert_max_num_queries) -> None:
    p, owner = busy_project
    c = _client(owner)
    for show in ("", "open", "complete", "gold"):
        with django_assert_max_num_queries(5):
            assert (
                c.get(reverse("annotations:items", args=[p.slug]), {"show": show}).status_code
                == 200
            )
    item = p.items.filter(submitted__gt=0).first()
    with django_assert_max_num_queries(8):
        r = c.get(reverse("annotations:item", args=[p.slug, item.public_id]))
    assert r.status_code == 200


def test_api_list_query_counts_are_pinned(django_assert_max_num_queries) -> None:
    staff = f.user(is_staff=True)
    member = f.user()
    for _ in range(12):
        f.project(annotators=[member])
    for user in (staff, member):
        c = _client(user)
        with django_assert_max_num_queries(2):
            body = c.get("/api/v1/annotations/projects/").json()
        assert len(body["results"]) == 12
