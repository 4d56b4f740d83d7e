"""Chromium: log in, rank by drag and drop and by keyboard, submit, check the stored rankings."""

from __future__ import annotations

import pytest

from annotations.models import Annotation
from tests.annotations import factories as f

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_annotator_ranks_by_drag_and_by_keyboard(asgi_server, run_in_browser) -> None:
    ann = f.user("e2e-annotator")
    p = f.project(annotators=[ann], k=3, overlap=1, blind=False, label_schema=[])
    items = f.items(p, 2)
    base = asgi_server.url

    async def scenario(page, shot):
        await page.goto(base + "/accounts/login/?next=/annotate/")
        await page.fill("input[name=username]", ann.username)
        await page.fill("input[name=password]", f.PASSWORD)
        await page.click("form [type=submit]")
        await page.wait_for_url("**/annotate/")
        await shot("queue")
        await page.click("text=Start annotating")
        await page.wait_for_selector("#ranking .rank-chip")
        await shot("task-before")
        # drag C to the top
        chips = page.locator("#ranking .rank-chip")
        src = await chips.nth(2).locator(".handle").bounding_box()
        dst = await chips.nth(0).bounding_box()
        await page.mouse.move(src["x"] + 4, src["y"] + 8)
        await page.mouse.down()
        for step in range(1, 16):  # SortableJS's fallback follows real pointer moves
            y = src["y"] + 8 + (dst["y"] + 4 - src["y"] - 8) * step / 15
            await page.mouse.move(src["x"] + 4, y)
            await page.wait_for_timeout(20)
        await page.mouse.up()
        await page.wait_for_function("document.getElementById('ranking-input').value !== ''")
        order1 = await page.eval_on_selector_all(
            "#ranking .rank-chip", "els => els.map(e => e.dataset.rid)"
        )
        await page.wait_for_selector("#autosave:has-text('Draft saved')")
        await shot("task-dragged")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#ranking .rank-chip")
        # keyboard: pick 3, move up twice, pick 2 and tie it with the one above
        await page.keyboard.press("3")
        await page.keyboard.press("ArrowUp")
        await page.keyboard.press("k")
        await page.keyboard.press("2")
        await page.keyboard.press("=")
        await page.wait_for_selector("#ranking .rank-chip.tied.in-tie")
        places = await page.eval_on_selector_all(
            "#ranking .rank-pos", "els => els.map(e => e.textContent)"
        )
        assert places == ["1", "2=", "2="], places  # C first, then A and B tied for place 2
        await shot("task-keyboard")
        order2 = await page.eval_on_selector_all(
            "#ranking .rank-chip", "els => els.map(e => e.dataset.rid)"
        )
        await page.keyboard.press("Enter")
        await page.wait_for_url("**/annotate/")
        await shot("done")
        return order1, order2

    order1, order2 = run_in_browser(scenario)
    anns = list(
        Annotation.objects.filter(annotator=ann, status="submitted").order_by("submitted_at")
    )
    assert len(anns) == 2
    for ann_obj, order in zip(anns, (order1, order2), strict=True):
        ids = {str(r.public_id): r.index for r in ann_obj.item.responses.all()}
        assert [i for g in ann_obj.ranking for i in g] == [ids[r] for r in order]
    assert all(len(g) == 1 for g in anns[0].ranking)  # drag: strict order
    assert any(len(g) == 2 for g in anns[1].ranking)  # keyboard: a tie
    assert {a.item_id for a in anns} == {i.id for i in items}


def test_staff_create_a_project_and_an_invitation_link(asgi_server, run_in_browser) -> None:
    from annotations.models import Invitation, Project

    staff = f.user("e2e-staff", is_staff=True)
    base = asgi_server.url

    async def scenario(page, shot):
        await page.goto(base + "/accounts/login/?next=/annotate/new/")
        await page.fill("input[name=username]", staff.username)
        await page.fill("input[name=password]", f.PASSWORD)
        await page.click("form [type=submit]")
        await page.wait_for_url("**/annotate/new/")
        await page.fill("input[name=name]", "Browser study")
        await page.fill("textarea[name=guidelines]", "# Rank\nPrefer **helpful** answers.")
        await page.select_option("select[name=task_type]", "pairwise")
        await page.fill("input[name=k]", "3")
        await page.click("text=Create project")
        await page.wait_for_selector("text=A pairwise project has exactly 2 responses per item.")
        await shot("project-new-errors")
        await page.fill("input[name=k]", "2")
        await page.fill("textarea[name=label_schema]", '[{"name": "harmless", "kind": "yesno"}]')
        await page.click("text=Create project")
        await page.wait_for_url("**/invitations/")
        await page.click("text=Create an invitation link")
        await page.wait_for_selector(".copy-btn")
        link = await page.input_value(".copy-row input")
        await page.click(".copy-btn")
        await page.wait_for_selector(".copy-btn:has-text('Cop'), .copy-btn:has-text('Ctrl')")
        await shot("invitations")
        return link

    link = run_in_browser(scenario)
    p = Project.objects.get(name="Browser study")
    assert (p.owner_id, p.task_type, p.k) == (staff.pk, "pairwise", 2)
    assert link.endswith(f"/annotate/invite/{Invitation.objects.get(project=p).token}/")
