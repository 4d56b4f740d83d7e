"""The API key never appears in errors, reprs or log records."""

from __future__ import annotations

import logging

import pytest

from arena.providers import (
    AuthenticationFailed,
    GenerationParams,
    ProviderError,
    UpstreamError,
    get_client,
)
from tests.arena.providers.conftest import API_KEY, anthropic_endpoint, openai_endpoint, run_stream
from tests.fakes.fake_llm import Behaviour

WRONG_KEY = "sk-wrong-VERY-SECRET-987654"


def _texts(exc: ProviderError) -> list[str]:
    return [str(exc), repr(exc), exc.detail, exc.user_message, *map(str, exc.args)]


@pytest.mark.parametrize("make_endpoint", [openai_endpoint, anthropic_endpoint])
async def test_wrong_key_echoed_by_the_server_is_redacted(fake_llm, runtime, caplog, make_endpoint):
    caplog.set_level(logging.DEBUG)
    endpoint = make_endpoint(fake_llm, api_key=WRONG_KEY)

    with pytest.raises(AuthenticationFailed) as excinfo:
        await run_stream(endpoint, runtime, GenerationParams(model="m"))

    assert "Incorrect API key provided: ***" in excinfo.value.detail
    for text in _texts(excinfo.value):
        assert WRONG_KEY not in text
    assert caplog.records, "the failure is logged"
    for record in caplog.records:
        assert WRONG_KEY not in record.getMessage()


async def test_retries_and_failures_log_without_the_key(fake_llm, runtime, caplog):
    caplog.set_level(logging.DEBUG)
    fake_llm.behave("m", Behaviour(fault="status", status=500))

    with pytest.raises(UpstreamError) as excinfo:
        await run_stream(openai_endpoint(fake_llm), runtime, GenerationParams(model="m"))

    assert any("retrying" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
        assert API_KEY not in str(record.args)
    for text in _texts(excinfo.value):
        assert API_KEY not in text


def test_endpoint_and_client_reprs_hide_the_key(fake_llm):
    endpoint = openai_endpoint(fake_llm)

    assert API_KEY not in repr(endpoint)
    assert API_KEY not in str(endpoint)
    assert API_KEY not in repr(get_client(endpoint))
    assert endpoint.has_api_key


def test_user_messages_are_fixed_texts():
    error = UpstreamError(f"boom {API_KEY}")
    assert API_KEY not in error.user_message
