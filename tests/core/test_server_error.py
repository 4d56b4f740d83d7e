"""handler500: a dependency that is down is a 503 that says so; any other error stays a 500."""

from __future__ import annotations

import pytest
import redis.exceptions
from django.db import OperationalError
from django.test import Client, override_settings
from django.urls import path
from kombu.exceptions import OperationalError as BrokerError


def _raiser(exc: Exception):
    def view(request):
        raise exc

    return view


urlpatterns = [
    path("db/", _raiser(OperationalError("connection refused"))),
    path("redis/", _raiser(redis.exceptions.ConnectionError("refused"))),
    path("broker/", _raiser(BrokerError("no broker"))),
    path("bug/", _raiser(ZeroDivisionError())),
    path("api/v1/db/", _raiser(OperationalError("the database system is starting up"))),
]
handler500 = "core.http.server_error"


@pytest.fixture
def client():
    with override_settings(ROOT_URLCONF=__name__, DEBUG=False):
        yield Client(raise_request_exception=False)


@pytest.mark.parametrize(
    "url,what",
    [
        ("/db/", b"the database"),
        ("/redis/", b"the cache and message service"),
        ("/broker/", b"the background-work queue"),
    ],
)
def test_a_dependency_down_is_a_503_page_naming_it(client, url, what):
    response = client.get(url)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert what in response.content and b"Nothing you saved is lost" in response.content
    assert b"Traceback" not in response.content


def test_the_api_gets_the_json_shape(client):
    response = client.get("/api/v1/db/")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"


def test_a_bug_stays_a_500_without_details(client):
    response = client.get("/bug/")
    assert response.status_code == 500
    assert b"ZeroDivisionError" not in response.content
