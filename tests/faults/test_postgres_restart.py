"""PostgreSQL restarts under a running web process: requests in the gap get a clear 503, the
pool recovers by itself once the server is back, and no stored row is lost."""

from __future__ import annotations

import time

import httpx
import pytest

from tests import harness
from tests.faults.conftest import manage

pytestmark = [pytest.mark.services]

PAGES = ["/arena/", "/leaderboard/", "/api/v1/models/", "/api/v1/leaderboard/categories/"]
COUNT_VOTES = "from arena.models import Vote, Battle; print('COUNT', Vote.objects.count(), Battle.objects.count())"
ADD_VOTES = (
    "from tests.preferences import factories as f; "
    "[f.voted_battle(prompts=[f'restart {i}']) for i in range(5)]"
)


def _counts(url: str) -> list[str]:
    out = manage(url, "shell", "-c", COUNT_VOTES)
    return out.split("COUNT", 1)[1].split()


def test_pages_answer_503_while_postgresql_is_down_and_recover_without_a_restart(
    private_postgres, migrated_url
):
    manage(migrated_url, "shell", "-c", ADD_VOTES)
    before = _counts(migrated_url)
    assert before == ["5", "5"]
    with (
        harness.asgi_server(migrated_url, REDIS_URL="") as web,
        httpx.Client(base_url=web.url, timeout=60) as http,
    ):
        assert [http.get(p).status_code for p in PAGES] == [200] * len(PAGES)
        private_postgres.stop()
        answers = {}
        waits = []
        for page in PAGES:
            asked = time.monotonic()
            response = http.get(page)
            waits.append(time.monotonic() - asked)
            answers[page] = response.status_code
            # A page that does not need the database may still serve; none may fail with a 500.
            assert response.status_code in (200, 503), (page, response.text[:300])
            if response.status_code == 503:
                assert response.headers["Retry-After"] == "5"
                if page.startswith("/api/"):
                    assert response.json()["code"] == "service_unavailable"
                else:
                    assert "cannot reach the database" in response.text
        assert answers["/api/v1/models/"] == answers["/leaderboard/"] == 503
        assert max(waits) < 8  # the pool's 5-s wait for a connection, then the 503
        assert http.get("/healthz").status_code == 503
        private_postgres.start()
        restarted = time.monotonic()
        harness.wait_until(
            lambda: http.get("/api/v1/models/").status_code == 200,
            timeout=60,
            what="the web process to serve pages again after PostgreSQL restarted",
        )
        recovery = time.monotonic() - restarted
        print(f"postgres restart: 503 within {max(waits):.1f} s, pages back {recovery:.2f} s after")
        assert recovery < 10
        assert [http.get(p).status_code for p in PAGES] == [200] * len(PAGES)
        assert web.popen.poll() is None  # the same process: nothing was restarted
    assert _counts(migrated_url) == before
