"""Attack class: SQL injection through report definitions (dimension, measure, filter and sort
names, operators, sources, time zones, parameter names), report query parameters, and record
list filters.

Report definitions never carry SQL: every name is an identifier checked against a pattern at
upload, values are bound parameters. 12 payloads, each tried in 10 places of a report definition,
as a filter value (inert data), as a string report parameter (inert data), as a report parameter
name, as a date-range value, and as a list filter name and value: 12 x 17 = 204 cases.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest

from tests.conftest import BANK
from tests.security.conftest import MODELER, assert_refused, definition_absent

PAYLOADS = [
    "region; DROP TABLE records; --",
    "region' OR '1'='1",
    'region"); SELECT 1; --',
    "region UNION SELECT id, data FROM records",
    "data->>'uscc'",
    "(SELECT count(*) FROM audit_log)",
    "region/**/OR/**/1=1",
    "1; ATTACH 'x.db' AS x",
    "region\x00",
    "region' --",
    "\"region\"",
    "region)||(SELECT 1",
]
BASE_REPORT = json.loads((BANK / "reports" / "customers_by_region_industry.json").read_text("utf-8"))


def _set(path: list[Any]) -> Callable[[dict[str, Any], str], None]:
    def mutate(document: dict[str, Any], payload: str) -> None:
        node: Any = document
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = payload
    return mutate


def _add_measure(member: str) -> Callable[[dict[str, Any], str], None]:
    def mutate(document: dict[str, Any], payload: str) -> None:
        measure = {"name": "total", "agg": "sum", "field": "employees"}
        measure[member] = payload
        document["measures"].append(measure)
    return mutate


def _filter(member: str) -> Callable[[dict[str, Any], str], None]:
    def mutate(document: dict[str, Any], payload: str) -> None:
        condition = {"field": "region", "op": "eq", "value": "Fujian"}
        condition[member] = payload
        document["filters"] = [condition]
    return mutate


def _parameter_name(document: dict[str, Any], payload: str) -> None:
    document["parameters"] = [{"name": payload, "type": "string"}]


# (mutation, pointer of the refusal, codes)
PLACES: dict[str, tuple[Callable[[dict[str, Any], str], None], str, tuple[str, ...]]] = {
    "dimension field": (_set(["dimensions", 0, "field"]), "/dimensions/0/field", ("definition.schema",)),
    "dimension name": (_set(["dimensions", 0, "name"]), "/dimensions/0/name", ("definition.schema",)),
    "measure name": (_add_measure("name"), "/measures/1/name", ("definition.schema",)),
    "measure field": (_add_measure("field"), "/measures/1/field", ("definition.schema",)),
    "measure agg": (_add_measure("agg"), "/measures/1/agg", ("definition.schema",)),
    "sort key": (_set(["sort", 0, "by"]), "/sort/0/by", ("definition.schema",)),
    "filter field": (_filter("field"), "/filters/0/field", ("definition.schema",)),
    "filter operator": (_filter("op"), "/filters/0/op", ("definition.schema",)),
    "time zone": (_set(["timezone"]), "/timezone", ("definition.unknown_timezone", "definition.schema")),
    "parameter name": (_parameter_name, "/parameters/0/name", ("definition.schema",)),
}


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("place", sorted(PLACES))
def test_report_definition_names_are_identifiers_not_sql(shared_client: Any, place: str, payload: str) -> None:
    mutate, pointer, codes = PLACES[place]
    document = copy.deepcopy(BASE_REPORT)
    document["key"] = "injected"
    mutate(document, payload)
    response = shared_client.post("/api/v1/definitions", headers=MODELER, json=document)
    if "\x00" in payload:  # refused when the body is read: no stored text can hold a NUL
        assert_refused(response, 400, "request.bad_string")
    else:
        assert_refused(response, 422, codes, pointer)
    assert definition_absent(shared_client, "report", "injected")


def _upload_parameterised(client: Any) -> None:
    document = copy.deepcopy(BASE_REPORT)
    document.update(key="by_region_param", parameters=[{"name": "r", "type": "string"}],
                    filters=[{"field": "region", "op": "eq", "param": "r"}])
    assert client.post("/api/v1/definitions", headers=MODELER, json=document).status_code in (200, 201)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_filter_value_is_bound_data(shared_client: Any, shared_customer_id: str, payload: str) -> None:
    document = copy.deepcopy(BASE_REPORT)
    document.update(key="by_region_value", filters=[{"field": "region", "op": "eq", "value": payload}])
    upload = shared_client.post("/api/v1/definitions", headers=MODELER, json=document)
    if "\x00" in payload:
        assert_refused(upload, 400, "request.bad_string")
        return
    assert upload.status_code in (200, 201), upload.text
    result = shared_client.get("/api/v1/reports/by_region_value")
    assert result.status_code == 200, result.text
    assert result.json()["rows"] == []  # the one customer (region Fujian) is not matched


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_string_parameter_is_bound_data(shared_client: Any, shared_customer_id: str, payload: str) -> None:
    _upload_parameterised(shared_client)
    assert shared_client.get("/api/v1/reports/by_region_param", params={"r": "Fujian"}).json()["rows"] == [
        ["Fujian", "423840", 1]]
    result = shared_client.get("/api/v1/reports/by_region_param", params={"r": payload})
    assert result.status_code == 200, result.text
    assert result.json()["rows"] == []


@pytest.mark.parametrize("payload", PAYLOADS)
def test_an_unknown_report_parameter_name_is_refused(shared_client: Any, payload: str) -> None:
    response = shared_client.get("/api/v1/reports/customers_by_region_industry", params={payload: "1"})
    assert_refused(response, 422, "report.unknown_parameter", payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_date_range_parameter_takes_only_dates(shared_client: Any, payload: str) -> None:
    response = shared_client.get("/api/v1/reports/complaints_by_month", params={"period": f"2024-01-01..{payload}"})
    assert_refused(response, 422, "report.parameter_type", "period")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_list_filter_names_a_field(shared_client: Any, shared_customer_id: str, payload: str) -> None:
    response = shared_client.get("/api/v1/forms/customer/records", params={payload: "x"})
    assert_refused(response, (400, 422), ("definition.unknown_field", "request.bad_parameter"))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_list_filter_value_is_bound_data(shared_client: Any, shared_customer_id: str, payload: str) -> None:
    listing = shared_client.get("/api/v1/forms/customer/records", params={"region": payload})
    if "\x00" in payload:  # no stored text can hold a NUL (PostgreSQL answered it with a 500)
        assert_refused(listing, 400, "request.bad_parameter", "region")
    else:
        assert listing.status_code == 200, listing.text
        assert (listing.json()["items"], listing.json()["total"]) == ([], 0)
    numeric = shared_client.get("/api/v1/forms/customer/records", params={"employees": payload})
    assert_refused(numeric, 400, "request.bad_parameter", "employees")
    everything = shared_client.get("/api/v1/forms/customer/records").json()
    assert everything["total"] == 1  # nothing dropped, nothing added
