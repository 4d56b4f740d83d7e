"""Text features computed once when a turn or response is written: style counts for
style-controlled ratings, the prompt's language and whether it is about code, and the
identity-leak check. Plain functions, no Django; no tokenizer that downloads files.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_LIST = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_CODE_HINTS = re.compile(
    r"```|\bdef \w+\(|\bfunction\s*\w*\(|\bclass \w+[:({]|#include\s*<|\bimport \w+|"
    r"\bSELECT\b.+\bFROM\b|=>|console\.log|\bprintf\(|\bpublic static\b|</?\w+>|\$\s*\w+\s*=|"
    r"\b(python|javascript|typescript|java|c\+\+|rust|golang|sql|regex|bash|code|bug|compile)\b",
    re.IGNORECASE,
)

LONG_PROMPT_CHARS = 500


@dataclass(frozen=True)
class StyleFeatures:
    length: int
    header_count: int
    list_count: int
    bold_count: int


def _strip_code_blocks(text: str) -> str:
    # Markdown inside code blocks is not style: drop fenced blocks before counting.
    parts = _FENCE.split(text)
    if len(parts) < 3:
        return text
    out, inside = [], False
    for part in parts:
        if part in ("```", "~~~"):
            inside = not inside
            continue
        if not inside:
            out.append(part)
    return "".join(out)


def style_features(text: str) -> StyleFeatures:
    """Chatbot Arena's style covariates: length (a token estimate), headers, list items, bold."""
    prose = _strip_code_blocks(text)
    return StyleFeatures(
        length=approx_tokens(text),
        header_count=len(_HEADER.findall(prose)),
        list_count=len(_LIST.findall(prose)),
        bold_count=len(_BOLD.findall(prose)),
    )


def approx_tokens(text: str) -> int:
    """Roughly tokens as a BPE tokenizer counts them: words plus punctuation, CJK per char."""
    cjk = sum(1 for ch in text if "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
    words = len(re.findall(r"[^\W\d_]+|\d+|[^\w\s]", text)) - cjk
    return max(0, words) + cjk


_SCRIPTS = (
    ("zh", "CJK UNIFIED"),
    ("ja", "HIRAGANA"),
    ("ja", "KATAKANA"),
    ("ko", "HANGUL"),
    ("ru", "CYRILLIC"),
    ("ar", "ARABIC"),
    ("he", "HEBREW"),
    ("hi", "DEVANAGARI"),
    ("th", "THAI"),
    ("el", "GREEK"),
)
# A few very frequent function words per Latin-script language; enough to tell them apart on a
# sentence, which", is all the category tabs need.
_STOPWORDS = {
    "en": "the and is are you what how to of in that it for with this can do a an i me my write please your be on why which",
    "es": "el la los las que de y es en un una por para como qué cómo",
    "fr": "le la les des est et que une un pour dans qui pas vous comment",
    "de": "der die das und ist nicht ein eine ich sie mit wie was für zu",
    "pt": "o a os as que de e é um uma para com não como você",
    "it": "il lo la gli che di e è un una per con non come sono",
    "nl": "de het een en is van dat niet ik je met voor hoe wat",
}
_STOP_SETS = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}


def detect_language(text: str) -> str:
    """ISO 639-1 code of the dominant language, or "" when unsure."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return ""
    scripts: Counter[str] = Counter()
    for ch in letters[:2000]:
        name = unicodedata.name(ch, "")
        for lang, marker in _SCRIPTS:
            if marker in name:
                scripts[lang] += 1
                break
    if scripts:
        lang, n = scripts.most_common(1)[0]
        if n >= 0.3 * min(len(letters), 2000):
            if lang == "zh" and (scripts["ja"] > 0):
                return "ja"
            return lang
    words = re.findall(r"[^\W\d_]+", text.lower())[:400]
    scores = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOP_SETS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] >= 1 else ""


def looks_like_code(text: str) -> bool:
    return bool(_CODE_HINTS.search(text))


def battle_categories(
    *, prompts: Iterable[str], language: str, has_code: bool, turns: int
) -> list[str]:
    """Leaderboard categories a battle counts in. Always "all"; more as the tags allow."""
    cats = ["all"]
    if language:
        cats.append(f"lang:{language}")
    if has_code:
        cats.append("coding")
    if any(len(p) >= LONG_PROMPT_CHARS for p in prompts):
        cats.append("long_prompt")
    if turns > 1:
        cats.append("multi_turn")
    return cats


def find_identity_leak(text: str, words: Iterable[str]) -> str | None:
    """The first identity word (model or vendor name) that ``text`` mentions, or None.

    Matching is case-insensitive on word boundaries, so "Claude" matches but "claudette" does not.
    """
    lowered = text.lower()
    for word in sorted(
        {w.strip().lower() for w in words if w and len(w.strip()) >= 3}, key=len, reverse=True
    ):
        if re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", lowered):
            return word
    return None


def contains_blocked(text: str, blocklist: Iterable[str]) -> str | None:
    """The first blocklisted phrase in ``text`` (case-insensitive, word-bounded), or None."""
    return find_identity_leak(text, blocklist)
