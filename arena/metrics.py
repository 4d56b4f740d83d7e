"""Arena counters on /metrics."""

from prometheus_client import Counter, Histogram

BATTLES_STARTED = Counter("pa_battles_started_total", "Battles started", ["mode"])
VOTES_CAST = Counter("pa_votes_total", "Votes stored", ["winner", "flagged"])
GENERATIONS = Counter("pa_generations_total", "Responses generated", ["provider", "outcome"])
TTFT = Histogram(
    "pa_provider_ttft_seconds", "Provider time to first token", ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)  # fmt: skip
