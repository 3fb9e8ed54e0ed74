"""The published meta-schema of report definitions (metadata/report.schema.json)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

METADATA = Path(__file__).resolve().parents[3] / "metadata"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    documents = [
        json.loads(path.read_text(encoding="utf-8")) for path in METADATA.glob("*.schema.json")
    ]
    registry = Registry().with_resources(
        (document["$id"], Resource.from_contents(document)) for document in documents
    )
    schema = json.loads((METADATA / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _document(**parts):
    document = {
        "kind": "report",
        "key": "by_month",
        "title": "By month",
        "source": {"form": "complaint"},
        "measures": [{"name": "n", "agg": "count"}],
    }
    document.update(parts)
    return document


def _paths(validator, document):
    return sorted(
        "/" + "/".join(str(part) for part in error.absolute_path)
        for error in validator.iter_errors(document)
    )


def test_the_documented_example_is_valid(validator):
    document = _document(
        title={"zh-CN": "月度", "en": "Monthly"},
        dimensions=[{"name": "month", "field": "received_on", "bucket": "month"}],
        measures=[
            {"name": "complaints", "agg": "count"},
            {"name": "avg_satisfaction", "agg": "avg", "field": "satisfaction"},
            {"name": "nps", "agg": "nps", "field": "satisfaction"},
            {
                "name": "avg_handling_days",
                "agg": "avg",
                "duration": {"from": "received_on", "to": "handled_on", "unit": "days"},
            },
            {
                "name": "timely_rate",
                "agg": "rate",
                "where": {"field": "timely", "op": "eq", "value": True},
            },
        ],
        filters=[
            {"field": "channel", "op": "in", "value": ["web", "phone"]},
            {"field": "x", "op": "is_null"},
        ],
        sort=[{"by": "month", "order": "asc"}],
        limit=1000,
        timezone="UTC",
    )

    assert _paths(validator, document) == []


@pytest.mark.parametrize(
    ("parts", "path"),
    [
        ({"kind": "form"}, "/kind"),
        ({"key": "Bad-Key"}, "/key"),
        ({"extra": 1}, "/"),
        ({"source": {"form": "complaint", "join": "x"}}, "/source"),
        ({"dimensions": [{"name": "m", "field": "d", "bucket": "hour"}]}, "/dimensions/0/bucket"),
        ({"measures": []}, "/measures"),
        ({"measures": [{"name": "m", "agg": "mode", "field": "x"}]}, "/measures/0/agg"),
        ({"measures": [{"name": "m", "agg": "percentile", "field": "x"}]}, "/measures/0"),
        ({"measures": [{"name": "m", "agg": "percentile", "field": "x", "p": 1}]}, "/measures/0/p"),
        ({"measures": [{"name": "m", "agg": "ratio", "numerator": "a"}]}, "/measures/0"),
        ({"dimensions": [{"name": "m", "field": "d", "bucket": "day", "tiers": [{"label": "x"}]}]}, "/dimensions/0"),
        ({"filters": [{"field": "d", "op": "eq", "value": 1, "param": "p"}]}, "/filters/0"),
        ({"parameters": [{"name": "p", "type": "enum"}]}, "/parameters/0"),
        ({"drill": ["a"]}, "/drill"),
        ({"measures": [{"name": "m", "agg": "rate"}]}, "/measures/0"),
        ({"measures": [{"name": "m", "agg": "sum"}]}, "/measures/0"),
        ({"measures": [{"name": "m", "agg": "nps"}]}, "/measures/0"),
        (
            {
                "measures": [
                    {
                        "name": "m",
                        "agg": "avg",
                        "field": "x",
                        "duration": {"from": "a", "to": "b", "unit": "days"},
                    }
                ]
            },
            "/measures/0",
        ),
        (
            {
                "measures": [
                    {
                        "name": "m",
                        "agg": "avg",
                        "duration": {"from": "a", "to": "b", "unit": "weeks"},
                    }
                ]
            },
            "/measures/0/duration/unit",
        ),
        ({"filters": [{"field": "x", "op": "like", "value": "%"}]}, "/filters/0/op"),
        ({"filters": [{"field": "x", "op": "in", "value": "web"}]}, "/filters/0/value"),
        ({"filters": [{"field": "x", "op": "eq"}]}, "/filters/0"),
        ({"filters": [{"field": "x", "op": "eq", "value": {"$ne": 1}}]}, "/filters/0/value"),
        ({"filters": [{"field": "x", "op": "is_null", "value": 1}]}, "/filters/0"),
        ({"sort": [{"by": "n", "order": "up"}]}, "/sort/0/order"),
        ({"limit": 0}, "/limit"),
        ({"limit": 100001}, "/limit"),
    ],
)
def test_shapes_the_meta_schema_refuses(validator, parts, path):
    assert path in _paths(validator, _document(**parts))
