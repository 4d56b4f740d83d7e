from __future__ import annotations

import hashlib
import time

import pytest
from django.core import signing

from arena.models import Vote
from preferences import services
from preferences.exports import ExportOptions
from preferences.models import DatasetRelease
from preferences.selectors import PairFilters
from tests.preferences import factories as f

pytestmark = pytest.mark.django_db


def _build(user, *, name="prefs", version="1.0", fmt="trl_standard", file_format="jsonl", **kw):
    release = services.release_create(
        user=user, name=name, version=version, format=fmt, file_format=file_format, **kw
    )
    services.release_build(release_id=release.pk)
    release.refresh_from_db()
    return release


@pytest.fixture
def votes():
    for i in range(30):
        f.voted_battle(prompts=[f"prompt {i}"], winner="ab"[i % 2])


def test_release_create_records_snapshot_and_enqueues_the_build(researcher, enqueued, votes):
    release = services.release_create(
        user=researcher, name="prefs", version="1.0", format="hh", file_format="jsonl.gz"
    )
    assert release.status == "pending"
    assert release.max_vote_id == Vote.objects.order_by("-id").first().pk
    assert enqueued == [("preferences.tasks.build_release", release.pk)]


def test_build_writes_files_card_manifest_and_counts(researcher, enqueued, votes):
    release = _build(researcher, options=ExportOptions(test_fraction=0.2))
    assert release.status == "ready" and release.progress == 1.0
    assert sum(release.row_counts.values()) == 30 == release.rows_done
    names = [x["name"] for x in release.files]
    assert names == ["train.jsonl", "test.jsonl", "README.md", "SHA256SUMS"]
    for info in release.files:
        data = (services.release_dir(release) / info["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]


def test_later_votes_do_not_change_a_release_and_rebuild_gives_the_same_bytes(
    researcher, enqueued, votes
):
    for file_format in ("jsonl", "jsonl.gz", "parquet"):
        release = _build(researcher, version=f"1-{file_format}", file_format=file_format)
        before = [(x["name"], x["sha256"]) for x in release.files]
        f.voted_battle(prompts=["a later vote"])
        services.release_rebuild(user=researcher, release=release)
        services.release_build(release_id=release.pk)
        release.refresh_from_db()
        assert [(x["name"], x["sha256"]) for x in release.files] == before


def test_build_is_claimed_once(researcher, enqueued, votes):
    release = services.release_create(user=researcher, name="p", version="1", format="hh")
    assert services.release_build(release_id=release.pk) is not None
    assert services.release_build(release_id=release.pk) is None  # a duplicate delivery


def test_the_celery_task_builds_a_release(researcher, enqueued, votes):
    from preferences.tasks import build_release

    release = services.release_create(user=researcher, name="p", version="1", format="hh")
    assert build_release.apply(args=[release.pk]).get() == "ready"


def test_a_failing_build_is_recorded(researcher, enqueued, votes, monkeypatch):
    release = services.release_create(user=researcher, name="p", version="1", format="hh")

    def boom(*a, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "write_splits", boom)
    with pytest.raises(RuntimeError):
        services.release_build(release_id=release.pk)
    release.refresh_from_db()
    assert release.status == "failed" and "disk full" in release.error


def test_names_and_versions_are_unique_and_published_releases_are_frozen(
    researcher, enqueued, votes
):
    release = _build(researcher)
    with pytest.raises(services.Conflict):
        services.release_create(user=researcher, name="prefs", version="1.0", format="hh")
    with pytest.raises(services.PermissionDenied):
        services.release_publish(user=researcher, release=release, public=True)
    staff = f.researcher("operator", staff=True)
    services.release_publish(user=staff, release=release, public=True)
    with pytest.raises(services.Conflict):
        services.release_rebuild(user=researcher, release=release)
    with pytest.raises(services.Conflict):
        services.release_publish(user=staff, release=release, public=False)
    assert DatasetRelease.objects.get(pk=release.pk).status == "published"


def test_outsiders_cannot_create_releases(outsider, enqueued):
    with pytest.raises(services.PermissionDenied):
        services.release_create(user=outsider, name="p", version="1", format="hh")


def test_signed_links_work_without_headers_and_refuse_tampering_and_expiry(
    client, researcher, enqueued, votes, monkeypatch
):
    release = _build(researcher)
    token = services.release_signed_token(release, "train.jsonl")
    url = f"/datasets/files/{token}/train.jsonl"
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b'{"prompt":')
    tampered = client.get(f"/datasets/files/{token}x/train.jsonl")
    assert tampered.status_code == 403 and b"This download link is not valid." in tampered.content
    another = client.get(f"/datasets/files/{token}/test.jsonl")
    assert another.status_code == 403 and b"for another file" in another.content
    with pytest.raises(services.PermissionDenied) as err:
        services.release_resolve_token(token, "train.jsonl", max_age=-1)
    assert err.value.code == "link_expired"
    later = time.time() + services.DEFAULT_LINK_SECONDS + 60
    monkeypatch.setattr(signing.time, "time", lambda: later)
    expired = client.get(url)
    assert expired.status_code == 403
    assert (
        b"Link expired" in expired.content and b"This download link has expired." in expired.content
    )
    monkeypatch.undo()
    other = services.release_signed_token(release, "../../etc/passwd")
    assert client.get(f"/datasets/files/{other}/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_public_releases_download_without_any_credentials(client, researcher, enqueued, votes):
    release = _build(researcher)
    url = f"/datasets/public/{release.public_id}/train.jsonl"
    assert client.get(url).status_code == 404  # not published yet
    services.release_publish(user=f.researcher("op", staff=True), release=release, public=True)
    assert client.get(url).status_code == 200
    assert client.get(f"/datasets/public/{release.public_id}/nope.jsonl").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_load_dataset_and_read_json_straight_from_a_signed_url(
    live_server, tmp_path, settings, enqueued
):
    import datasets
    import pandas as pd

    settings.MEDIA_ROOT = tmp_path / "media"
    user = f.researcher("loader")
    for i in range(12):
        f.voted_battle(prompts=[f"url prompt {i}"])
    release = services.release_create(
        user=user, name="url", version="1", format="trl_standard", file_format="jsonl.gz"
    )
    services.release_build(release_id=release.pk)
    release.refresh_from_db()
    token = services.release_signed_token(release, "train.jsonl.gz")
    url = f"{live_server.url}/datasets/files/{token}/train.jsonl.gz"
    ds = datasets.load_dataset("json", data_files=url, cache_dir=str(tmp_path / "hf"))
    assert ds["train"].num_rows == release.row_counts["train"]
    frame = pd.read_json(url, lines=True, compression="gzip")
    assert list(frame.columns) == ["prompt", "chosen", "rejected"]
    plain = services.release_create(user=user, name="url", version="2", format="hh")
    services.release_build(release_id=plain.pk)
    plain.refresh_from_db()
    token = services.release_signed_token(plain, "train.jsonl")
    frame = pd.read_json(f"{live_server.url}/datasets/files/{token}/train.jsonl", lines=True)
    assert len(frame) == plain.row_counts["train"]


@pytest.mark.django_db(transaction=True)
def test_chatbot_arena_parquet_release_loads_from_a_signed_url(
    live_server, tmp_path, settings, enqueued
):
    """The Parquet of battle rows (on PostgreSQL built from typed COPY fields, not JSON): read
    back over a signed URL by ``datasets`` and pandas, with its nested conversations intact."""
    import datasets
    import httpx
    import pandas as pd

    settings.MEDIA_ROOT = tmp_path / "media"
    user = f.researcher("arena-loader")
    f.voted_battle(
        model_a="gamma",
        model_b="delta",
        prompts=["first <b>turn</b> é", "second turn"],
        answers_a=["a1 ✓", ""],
        answers_b=["b1", "b2 \\n"],
        winner="b",
        categories=["all", "coding"],
        flags=["x"],
    )
    for i in range(9):
        f.voted_battle(prompts=[f"arena prompt {i}"], winner=["a", "tie", "both_bad"][i % 3])
    release = services.release_create(
        user=user,
        name="arena",
        version="1",
        format="arena_battles",
        file_format="parquet",
        filters=PairFilters(include_ties=True, include_both_bad=True, include_flagged=True),
        options=ExportOptions(test_fraction=0.0),
    )
    services.release_build(release_id=release.pk)
    release.refresh_from_db()
    assert release.status == "ready" and release.row_counts == {"train": 10, "test": 0}
    token = services.release_signed_token(release, "train.parquet")
    url = f"{live_server.url}/datasets/files/{token}/train.parquet"
    ds = datasets.load_dataset("parquet", data_files=url, cache_dir=str(tmp_path / "hf"))
    first = ds["train"][0]
    assert first["conversation_b"] == [
        {"role": "user", "content": "first <b>turn</b> é"},
        {"role": "assistant", "content": "b1"},
        {"role": "user", "content": "second turn"},
        {"role": "assistant", "content": "b2 \\n"},
    ]
    assert first["conversation_a"][1] == {"role": "assistant", "content": "a1 ✓"}
    assert first["conversation_a"][3] == {"role": "assistant", "content": ""}
    assert (first["model_a"], first["model_b"], first["winner"], first["turn"]) == (
        "gamma",
        "delta",
        "model_b",
        2,
    )
    assert (first["category_tag"], first["flags"], first["anony"]) == (
        ["all", "coding"],
        ["x"],
        True,
    )
    head = httpx.head(url, timeout=10)  # what fsspec asks first: no body, the size
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == release.files[0]["bytes"]
    frame = pd.read_parquet(url)
    assert frame["winner"].tolist()[1:4] == ["model_a", "tie", "tie (bothbad)"]
    assert frame["question_id"].str.startswith("arena:").all() and len(frame) == 10


def test_progress_is_reported_while_building(researcher, enqueued, monkeypatch):
    for i in range(12):
        f.voted_battle(prompts=[f"p{i}"])
    seen = []
    real = services.write_splits

    def spy(directory, rows, options, *, progress=None, progress_every=5000):
        def record(n):
            progress(n)
            seen.append(DatasetRelease.objects.values_list("status", "rows_done").get())

        return real(directory, rows, options, progress=record, progress_every=5)

    monkeypatch.setattr(services, "write_splits", spy)
    _build(researcher, filters=PairFilters())
    assert seen == [("building", 5), ("building", 10)]
    assert DatasetRelease.objects.get().rows_total == 12
