"""Prometheus counters of the annotation workflow (served at /metrics by django-prometheus)."""

from __future__ import annotations

from prometheus_client import Counter

ANNOTATIONS = Counter(
    "pa_annotations_total", "Annotations finished, by project and outcome", ["project", "outcome"]
)
CLAIMS = Counter("pa_annotation_claims_total", "Queue claims that handed out an item", ["kind"])
