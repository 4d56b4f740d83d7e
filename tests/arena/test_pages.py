"""Arena pages over HTTP: consent, start, battle page, votes, anonymity, hostile content."""

import re

import pytest

from arena import services
from arena.fragments import render_live_update
from arena.models import Battle, Response, Vote
from arena.tasks import generate_response
from tests.arena.factories import MARKERS, battle_with_turn, demo_models, marked_models
from tests.fakes.fake_llm import FakeLLMServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def voter_client(client):
    session = client.session
    session["arena_consent"] = True
    session.save()
    client.voter = services.voter_key(session.session_key)
    return client


def test_first_visit_shows_the_consent_banner_and_refuses_a_battle_before_consent(client):
    demo_models(2)
    page = client.get("/arena/").content.decode()
    assert 'id="consent"' in page and "How it works" in page
    response = client.post("/arena/", {"prompt": "hello"}, follow=True)
    assert "accept the terms" in response.content.decode()
    assert not Battle.objects.exists()
    client.post("/arena/consent/")
    assert 'id="consent"' not in client.get("/arena/").content.decode()


def test_start_redirects_to_the_battle_page_with_two_anonymous_panes(voter_client):
    demo_models(3)
    response = voter_client.post("/arena/", {"prompt": "Tell me about rivers"})
    battle = Battle.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/arena/b/{battle.public_id}/"
    page = voter_client.get(response["Location"]).content.decode()
    assert "Model A" in page and "Model B" in page
    assert f'ws-connect="/ws/arena/{battle.public_id}/"' in page
    assert (
        len(re.findall(r'id="vote-(?:a|b|tie|both_bad)"', page)) == 4
        and 'id="vote-a" class="vote side-a" disabled' in page
    )


def test_htmx_start_answers_with_a_client_redirect(voter_client):
    demo_models(2)
    response = voter_client.post("/arena/", {"prompt": "hi"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"].startswith("/arena/b/")


def test_htmx_error_is_shown_in_the_flash_area(voter_client):
    demo_models(2)
    response = voter_client.post("/arena/", {"prompt": " "}, HTTP_HX_REQUEST="true")
    assert response["HX-Retarget"] == "#flash"
    assert "Type a prompt first." in response.content.decode()


def test_another_session_cannot_see_the_battle(voter_client, client_factory=None):
    from django.test import Client

    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter=voter_client.voter)
    outsider = Client()
    assert outsider.get(f"/arena/b/{battle.public_id}/").status_code == 404
    assert outsider.post(f"/arena/b/{battle.public_id}/vote/", {"winner": "a"}).status_code == 404
    assert not Vote.objects.exists()
    assert voter_client.get(f"/arena/b/{battle.public_id}/").status_code == 200


def test_vote_over_htmx_reveals_the_names_and_locks_input(voter_client):
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter=voter_client.voter)
    before = voter_client.get(f"/arena/b/{battle.public_id}/").content.decode()
    assert a.display_name not in before and b.display_name not in before
    fragment = voter_client.post(
        f"/arena/b/{battle.public_id}/vote/", {"winner": "tie"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert a.display_name in fragment and b.display_name in fragment
    assert 'id="new-round"' in fragment and 'id="followup"' not in fragment
    # A replay returns the page with the recorded vote, not an error and not a second row.
    again = voter_client.post(
        f"/arena/b/{battle.public_id}/vote/", {"winner": "a"}, HTTP_HX_REQUEST="true"
    )
    assert again.status_code == 200 and "You voted: <strong>Tie</strong>" in again.content.decode()
    assert Vote.objects.count() == 1


def _scan(text: str) -> list[str]:
    return [m for m in MARKERS if m in text.lower()]


def test_no_identifying_string_reaches_the_page_before_the_vote(voter_client):
    with FakeLLMServer() as server:
        _no_identity_before_vote(voter_client, server)


def _no_identity_before_vote(voter_client, server):
    marked_models(server.openai_base_url)
    start = voter_client.post("/arena/", {"prompt": "Describe a sunset"})
    battle = Battle.objects.get()
    for response in Response.objects.filter(turn__battle=battle):
        assert generate_response.run(response.pk, 1) == "done"
    assert {r.model for r in server.requests} == {f"{MARKERS[4]}1", f"{MARKERS[4]}2"}
    url = start["Location"]
    assert not _scan(url)
    page = voter_client.get(url)
    assert not _scan(page.content.decode())
    assert not _scan(" ".join(f"{k}: {v}" for k, v in page.items()))
    # no database ids of models anywhere in links or attributes
    ids = {str(battle.model_a_id), str(battle.model_b_id)}
    hrefs = re.findall(r'(?:href|hx-post|action|ws-connect)="([^"]+)"', page.content.decode())
    assert hrefs and not any(part in ids for href in hrefs for part in href.strip("/").split("/"))
    assert not _scan(render_live_update(str(battle.public_id)))
    # After the vote the names are revealed.
    voter_client.post(f"/arena/b/{battle.public_id}/vote/", {"winner": "a"})
    assert _scan(voter_client.get(url).content.decode())


def test_hostile_prompt_and_output_cannot_inject_markup(voter_client):
    from arena.models import Provider

    demo_models(2)
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> [c](javascript:alert(1)) <style>body{}</style>'
    voter_client.post("/arena/", {"prompt": hostile})
    battle = Battle.objects.get()
    Response.objects.filter(turn__battle=battle).update(
        state="done", text=hostile + "\n\n**bold** `code` <iframe src=//evil></iframe>"
    )
    del Provider
    page = voter_client.get(f"/arena/b/{battle.public_id}/").content.decode()
    body = page.split('id="conversation"', 1)[1].split("</main>", 1)[0]
    tags = _tags(body)
    assert not {"script", "img", "style", "iframe"} & {tag for tag, _ in tags}
    attrs = [(name, value or "") for _, attributes in tags for name, value in attributes]
    assert not [name for name, _ in attrs if name.startswith("on")]
    assert not [value for name, value in attrs if name == "href" and "javascript" in value.lower()]
    assert "&lt;script&gt;" in body and "<strong>bold</strong>" in body


def _tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    from html.parser import HTMLParser

    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collector().feed(html)
    return found
