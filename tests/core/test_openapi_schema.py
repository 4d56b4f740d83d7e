"""The OpenAPI schema is exact enough for generated clients: drf-spectacular validates it with
no warning, list filters and bounds are documented, and errors share one component."""

from __future__ import annotations

import yaml
from django.core.management import call_command


def _schema(tmp_path) -> dict:
    out = tmp_path / "schema.yml"
    # --validate checks the result against the OpenAPI 3 meta-schema; --fail-on-warn turns
    # every drf-spectacular warning (an undocumentable field, a guessed type) into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    return yaml.safe_load(out.read_text())


def test_schema_validates_without_warnings_and_is_tight(tmp_path):
    schema = _schema(tmp_path)
    assert "Error" in schema["components"]["schemas"]
    pairs = schema["paths"]["/api/v1/pairs/"]["get"]
    params = {p["name"]: p for p in pairs["parameters"]}
    assert {"date_from", "source", "model", "min_trust", "include_ties", "language"} <= set(params)
    assert params["source"]["schema"]["items"]["enum"] == ["arena", "annotation", "consensus"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for param in operation.get("parameters", []):
                if param["name"] == "page_size":
                    assert param["schema"]["minimum"] == 1, (path, method)
                    assert param["schema"]["maximum"] == 500, (path, method)
            responses = operation["responses"]
            assert "503" in responses, (path, method)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (path, method, status)
    battles = schema["paths"]["/api/v1/battles/"]["get"]["responses"]
    assert "WWW-Authenticate" in battles["401"]["headers"]
    assert "Retry-After" in battles["429"]["headers"]
