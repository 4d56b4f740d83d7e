"""Built-in demo provider: synthetic models of known, different quality. DEMO ONLY.

These models do not understand anything. They fill templates with words taken from the prompt so
that the arena, the annotation queue and the leaderboard have something to work with offline,
with a known true ranking (``quality_rank``, 1 = best) to check the rating pipeline against.
Output is deterministic for a given model, prompt and ``GenerationParams.seed``; it streams at
``Endpoint.options["tokens_per_s"]`` after ``options["first_token_delay_s"]`` (0 = instant).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from arena.providers import errors
from arena.providers.base import GenerationParams, Message, TextDelta
from arena.providers.engine import AttemptEvent, AttemptResult, StreamingClient


@dataclass(frozen=True, slots=True)
class DemoModelSpec:
    """A demo model as ``seed_demo`` registers it."""

    slug: str
    display_name: str
    organisation: str
    quality_rank: int
    description: str


DEMO_MODELS: tuple[DemoModelSpec, ...] = (
    DemoModelSpec(
        "demo-scholar",
        "Demo Scholar",
        "Demo Lab",
        1,
        "Relevant, well-structured markdown: headers, lists, bold, a code block.",
    ),
    DemoModelSpec("demo-terse", "Demo Terse", "Demo Lab", 2, "Short, relevant, plain."),
    DemoModelSpec("demo-verbose", "Demo Verbose", "Demo Lab", 3, "Relevant but long and padded."),
    DemoModelSpec(
        "demo-generic", "Demo Generic", "Demo Lab", 4, "Generic boilerplate, barely on topic."
    ),
    DemoModelSpec("demo-offtopic", "Demo Offtopic", "Demo Lab", 5, "Ignores the prompt."),
)

_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    between both but by can could did do does doing down during each explain few for from further
    give had has have having he her here hers him his how i if in into is it its itself just me
    more most my no nor not now of off on once only or other our out over own please same she
    should show so some such tell than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why will
    with would write you your""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
_TOKEN = re.compile(r"\s*\S+")


def keywords(prompt: str, limit: int = 5) -> list[str]:
    """Distinct content words of ``prompt`` in order of appearance, lower-cased."""
    seen: list[str] = []
    for word in _WORD.findall(prompt):
        w = word.lower().strip("'-")
        if w not in _STOPWORDS and w not in seen:
            seen.append(w)
        if len(seen) == limit:
            break
    return seen


def _scholar(kw: list[str], rng: random.Random) -> str:
    topic = " ".join(kw[:3]) or "your question"
    points = (kw + ["context", "trade-offs", "evidence"])[:3]
    verbs = ["shapes", "constrains", "explains", "determines"]
    lines = [
        f"## {topic.capitalize()}: a structured answer",
        "",
        f"In short, **{topic}** is best understood by looking at a few parts in turn.",
        "",
        "### Key points",
        "",
    ]
    for i, p in enumerate(points, 1):
        lines.append(f"{i}. **{p.capitalize()}**: it {rng.choice(verbs)} how {topic} behaves.")
    lines += [
        "",
        "### Example",
        "",
        "```python",
        f"def describe(topic: str = {topic!r}) -> str:",
        '    return f"{topic}: start from the basics, then refine."',
        "```",
        "",
        "### Summary",
        "",
        f"- Start from *{points[0]}*.",
        f"- Check the effect of *{points[1]}*.",
        f"- Weigh *{points[2]}* before concluding.",
    ]
    return "\n".join(lines)


def _terse(kw: list[str], rng: random.Random) -> str:
    topic = " ".join(kw[:3]) or "that"
    first = kw[0] if kw else "it"
    ending = rng.choice(["matters most", "is the key factor", "decides the outcome"])
    return f"{topic.capitalize()}: focus on {first}; it {ending}."


def _verbose(kw: list[str], rng: random.Random) -> str:
    topic = " ".join(kw[:3]) or "this question"
    fillers = [
        "It is important to note that",
        "Furthermore, it is worth mentioning that",
        "In addition to the above, one should also keep in mind that",
        "Needless to say,",
        "As has been noted by many,",
        "It goes without saying that",
    ]
    paragraphs = []
    for i in range(6):
        word = kw[i % len(kw)] if kw else "this"
        lead = rng.choice(fillers)
        paragraphs.append(
            f"{lead} {word} plays a role in {topic}. When we think about {topic}, we must "
            f"consider {word}, and then consider it again, because {word} is, in many ways, "
            f"central to {topic} in a great many situations."
        )
    paragraphs.append(f"- {topic}\n- {topic} again\n- and, of course, {topic}")
    paragraphs.append(f"In conclusion, {topic} is a topic with many aspects worth considering.")
    return "\n\n".join(paragraphs)


def _generic(kw: list[str], rng: random.Random) -> str:
    opener = rng.choice(["That's a great question!", "Great question!", "Thanks for asking!"])
    return (
        f"{opener} There are many factors to consider, and the answer depends on your specific "
        "situation. Generally speaking, it is a good idea to do some research, consult reliable "
        "sources, and think carefully about your goals. I hope this helps!"
    )


def _offtopic(kw: list[str], rng: random.Random) -> str:
    subject = rng.choice(["sourdough bread", "the migration of swallows", "vintage bicycles"])
    return (
        f"Speaking of which, **{subject}** is fascinating. Few people realise how much patience "
        f"{subject} requires. Anyway, the weather has been lovely lately."
    )


_STYLES: dict[str, Callable[[list[str], random.Random], str]] = {
    "demo-scholar": _scholar,
    "demo-terse": _terse,
    "demo-verbose": _verbose,
    "demo-generic": _generic,
    "demo-offtopic": _offtopic,
}


def demo_text(model: str, messages: Sequence[Message], seed: int | None = None) -> str:
    """The full response ``model`` gives; raises KeyError for an unknown model."""
    style = _STYLES[model]
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    digest = hashlib.sha256(f"{model}\0{seed}\0{prompt}".encode()).digest()
    return style(keywords(prompt), random.Random(digest))


class DemoClient(StreamingClient):
    """Streams demo text through the same retry/breaker machinery as the real clients."""

    def _needs_http(self) -> bool:
        return False

    async def _attempt(
        self,
        http: aiohttp.ClientSession | None,
        messages: Sequence[Message],
        params: GenerationParams,
    ) -> AsyncIterator[AttemptEvent]:
        try:
            text = demo_text(params.model, messages, params.seed)
        except KeyError:
            raise errors.BadRequest(
                f"unknown demo model {params.model!r}", provider=self.endpoint.name, status=404
            ) from None
        tokens = _TOKEN.findall(text)
        finish = "stop"
        if params.max_tokens is not None and len(tokens) > params.max_tokens:
            tokens, finish = tokens[: params.max_tokens], "length"
        options = self.endpoint.options
        rate = float(options.get("tokens_per_s", 0) or 0)
        clock = self.runtime.clock
        delay = float(options.get("first_token_delay_s", 0) or 0)
        if delay > 0:
            await clock.sleep(delay)
        start = clock.monotonic()
        for i, token in enumerate(tokens):
            if rate > 0:
                wait = start + i / rate - clock.monotonic()
                if wait > 0:
                    await clock.sleep(wait)
            yield TextDelta(token)
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        yield AttemptResult(
            prompt_tokens=prompt_tokens, completion_tokens=len(tokens), finish_reason=finish
        )
