"""Provider client overhead and concurrency, against the fake LLM server on loopback.

Run: .venv/bin/python bench/providers.py [--runs 300] [--concurrent 200]

1. Overhead: the same stream read through our OpenAI client and through a bare aiohttp loop
   (the HTTP library our clients use: SSE lines -> json.loads -> content), interleaved in the same run, both on warm keep-alive
   pools. Prints median time to first token and to the end for each, and our added cost.
   Budget: < 2 ms added at the median.
2. Concurrency: N streams at once from one process through one client; prints counts of
   completions and errors, wall time and TTFT percentiles. Budget: zero errors at N = 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from arena.providers import (  # noqa: E402
    Completion,
    Endpoint,
    GenerationParams,
    ProviderError,
    Runtime,
    TextDelta,
    Timeouts,
    get_client,
)

ROOT = Path(__file__).resolve().parents[1]

TEXT = " ".join(f"word{i}" for i in range(100))
MESSAGES = [{"role": "user", "content": "Say a hundred words."}]


async def ours(client, params) -> tuple[float, float]:
    start = time.perf_counter()
    first = None
    async for event in client.stream(MESSAGES, params):
        if first is None and isinstance(event, TextDelta):
            first = time.perf_counter()
        elif isinstance(event, Completion):
            end = time.perf_counter()
    assert first is not None
    return first - start, end - start


def behaviour(**values: object) -> dict[str, str]:
    """Header telling the fake server how to answer (see tests/fakes/fake_llm.py)."""
    return {"x-fake-behaviour": json.dumps(values)}


async def raw(http: aiohttp.ClientSession, url: str, params) -> tuple[float, float]:
    body = {
        "model": params.model,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = None
    parts = []
    async with http.post(url, json=body) as response:
        async for raw_line in response.content:
            line = raw_line.decode().rstrip("\r\n")
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            for choice in chunk.get("choices") or ():
                text = choice["delta"].get("content")
                if text:
                    if first is None:
                        first = time.perf_counter()
                    parts.append(text)
    end = time.perf_counter()
    assert first is not None and "".join(parts) == TEXT
    return first - start, end - start


async def overhead(base_url: str, runs: int) -> None:
    params = GenerationParams(model="bench")
    headers = behaviour(text=TEXT)
    endpoint = Endpoint(
        kind="openai", name="bench", base_url=base_url, max_concurrency=4, extra_headers=headers
    )
    url = base_url + "/chat/completions"
    results: dict[str, list[tuple[float, float]]] = {"ours": [], "raw": []}
    async with (
        get_client(endpoint, runtime=Runtime()) as client,
        aiohttp.ClientSession(headers=headers) as http,
    ):
        for _ in range(20):  # warm both pools and code paths
            await ours(client, params)
            await raw(http, url, params)
        for i in range(runs):
            order = [("ours", ours(client, params)), ("raw", raw(http, url, params))]
            if i % 2:
                order.reverse()
            for name, coro in order:
                results[name].append(await coro)

    def med(name: str, k: int) -> float:
        return statistics.median(r[k] for r in results[name]) * 1000

    print(f"overhead: {runs} interleaved runs per side, 100-token stream, loopback")
    print(f"  {'':6} {'ttft ms (median)':>18} {'total ms (median)':>18}")
    for name in ("raw", "ours"):
        print(f"  {name:6} {med(name, 0):18.3f} {med(name, 1):18.3f}")
    ttft_add, total_add = med("ours", 0) - med("raw", 0), med("ours", 1) - med("raw", 1)
    print(f"  added  {ttft_add:18.3f} {total_add:18.3f}   (budget < 2 ms)")


async def concurrency(base_url: str, n: int) -> None:
    params = GenerationParams(model="slow")
    endpoint = Endpoint(
        kind="openai",
        name="bench-concurrent",
        base_url=base_url,
        extra_headers=behaviour(text=TEXT, tokens_per_s=50, first_token_delay_s=0.2),
        max_concurrency=n,
        timeouts=Timeouts(connect_s=10, first_token_s=30, total_s=60),
    )
    ttfts: list[float] = []
    errors: list[str] = []
    texts_ok = 0
    async with get_client(endpoint, runtime=Runtime()) as client:

        async def one() -> None:
            nonlocal texts_ok
            try:
                ttft, _ = await ours(client, params)
            except ProviderError as exc:
                errors.append(repr(exc))
                return
            ttfts.append(ttft)
            texts_ok += 1

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - start
    ttfts.sort()
    q = statistics.quantiles(ttfts, n=20) if len(ttfts) > 1 else [0.0] * 19
    print(f"concurrency: {n} streams at once, 100 tokens at 50 tokens/s, 0.2 s first-token delay")
    print(f"  completed: {texts_ok}   errors: {len(errors)}   wall: {wall:.2f} s")
    print(f"  ttft median {statistics.median(ttfts) * 1000:.1f} ms, p95 {q[18] * 1000:.1f} ms")
    for e in errors[:5]:
        print("  error:", e)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=200)
    args = parser.parse_args()
    # The fake server runs in its own process so that it does not share our GIL.
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_llm"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
        asyncio.run(overhead(base_url, args.runs))
        asyncio.run(concurrency(base_url, args.concurrent))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
