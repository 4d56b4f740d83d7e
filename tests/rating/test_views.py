"""The leaderboard page: empty state, table, SVG plots, htmx fragments, pinned queries."""

import random

import pytest

from rating import services
from tests.rating import factories as f


@pytest.fixture
def board(db):
    a, b, c = f.llm("alpha", organisation="Org <A>"), f.llm("beta"), f.llm("gamma")
    f.votes(a, b, "a", 5, categories=["all", "coding"])
    f.votes(b, c, "a", 4)
    f.votes(c, a, "b", 3)
    f.votes(a, c, "a", 2, flags=["identity_leak"])
    services.leaderboard_recompute_full(detect_anomalies=False)


def test_empty_state_when_there_are_no_votes(client, db):
    page = client.get("/leaderboard/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "No votes yet" in html and "/arena/" in html and "<table" not in html
    services.leaderboard_refresh()
    assert "No votes yet" in client.get("/leaderboard/").content.decode()


def test_page_shows_table_plots_and_flagged_count(client, board, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        page = client.get("/leaderboard/")
    html = page.content.decode()
    assert page.status_code == 200
    for header in ("Rank", "Model", "Score", "95% CI", "Votes", "Organisation", "License"):
        assert header in html
    assert html.count("<svg") == 3  # CI plot, win-rate and battle-count heatmaps
    assert "2 flagged votes excluded" in html
    assert "Org &lt;A&gt;" in html and "Org <A>" not in html
    assert 'ws-connect="/ws/leaderboard/"' in html
    assert "Coding" in html  # category selector


def test_htmx_request_gets_only_the_board_fragment(client, board):
    page = client.get("/leaderboard/?category=coding&sort=votes", headers={"HX-Request": "true"})
    html = page.content.decode()
    assert html.lstrip().startswith('<div id="board"')
    assert "<html" not in html and 'data-category="coding"' in html


def test_style_control_toggle_serves_the_style_board(client, db):
    a, b, c = f.llm("alpha"), f.llm("beta"), f.llm("gamma")
    rng = random.Random(4)
    for k in range(72):  # 10 decisive votes per parameter: 2 strengths + 4 style coefficients
        x, y = [(a, b), (b, c), (c, a)][k % 3]
        features = tuple(
            (rng.randint(50, 900), rng.randint(0, 3), rng.randint(0, 5), rng.randint(0, 4))
            for _ in "ab"
        )
        f.vote(f.battle(x, y, voter=f"v{k}", features=features), rng.choice("ab"))
    services.leaderboard_recompute_full(detect_anomalies=False)
    html = client.get("/leaderboard/?style=1").content.decode()
    assert "style controlled" in html and "Style coefficients" in html


def test_style_board_with_too_few_votes_says_what_it_needs(client, board):
    html = client.get("/leaderboard/?style=1").content.decode()
    assert "Not enough votes for a style-controlled board" in html
    assert "needs 60 (10 per parameter: 2 model strengths + 4 style coefficients)" in html
    assert "Show the plain leaderboard" in html


def test_style_board_missing_before_the_full_recompute_is_explained(client, db):
    a, b = f.llm("alpha"), f.llm("beta")
    f.votes(a, b, "a", 3)
    services.leaderboard_refresh()
    html = client.get("/leaderboard/?style=1").content.decode()
    assert "No style-controlled board yet" in html


def test_sorting_by_model_name(client, board):
    html = client.get("/leaderboard/?sort=model&dir=asc").content.decode()
    assert html.index(">Alpha<") < html.index(">Beta<") < html.index(">Gamma<")
    html = client.get("/leaderboard/?sort=model&dir=desc").content.decode()
    assert html.index(">Gamma<") < html.index(">Beta<") < html.index(">Alpha<")


def test_unknown_parameters_fall_back_to_defaults(client, board):
    page = client.get("/leaderboard/?sort=drop%20table&source=evil&category=" + "x" * 100)
    assert page.status_code == 200


def test_outsider_cannot_post_to_the_page(client, board):
    assert client.post("/leaderboard/").status_code in (403, 405)
