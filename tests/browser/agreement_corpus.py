"""The inputs the AJV agreement test sends to both sides: edge cases written by hand, probes
generated from each served schema (types, bounds, lengths, enums, formats, patterns of every
property), and rows of the real imports converted as their mappings say.

Numbers are ``Decimal`` (what the engine parses from JSON); cases whose JSON *text* matters
(``1E2``, ``-0``, ``1e400``) carry it in ``body``.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from browser_support import Case

from engine.imports import (
    BadCell,
    ColumnField,
    ConstantField,
    LookupField,
    convert_cell,
    load_mapping,
    read_rows,
)

REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "examples" / "bank" / "imports"
D = Decimal

# A form uploaded next to the bank's, for the pattern and format semantics the bank forms do
# not exercise (\d \w \s . $ with non-ASCII input, date-time, email, uri, multipleOf, nesting).
EDGE_FORM: dict[str, Any] = {
    "kind": "form", "key": "ajv_edges", "title": "AJV edge cases",
    "schema": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "digits": {"type": "string", "pattern": "^\\d{3}$"},
            "word": {"type": "string", "pattern": "^\\w+$"},
            "spaced": {"type": "string", "pattern": "^a\\sb$"},
            "dot": {"type": "string", "pattern": "^.$"},
            "bounded": {"type": "string", "pattern": "^[a-z]+\\b"},
            "unanchored": {"type": "string", "pattern": "[0-9]"},
            "numbered": {"type": "object", "patternProperties": {"^\\d+$": {"type": "integer"}},
                         "additionalProperties": False},
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "mail": {"type": "string", "format": "email"},
            "link": {"type": "string", "format": "uri"},
            "amount": {"type": "number", "multipleOf": 0.01},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "count": {"type": "integer", "minimum": 1, "maximum": 10},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True, "maxItems": 3},
            "owner": {"type": "object", "additionalProperties": False, "required": ["name"],
                      "properties": {"name": {"type": "string", "minLength": 1},
                                     "share": {"type": "number", "minimum": 0, "maximum": 100}}},
            "shareholders": {"type": "array", "items": {
                "type": "object", "required": ["name", "share"],
                "properties": {"name": {"type": "string", "minLength": 1},
                               "share": {"type": "number", "minimum": 0, "maximum": 100, "x-decimal": {"scale": 2}}}}},
            "kind": {"oneOf": [{"const": "a", "title": "A"}, {"const": "b", "title": "B"}]},
            "flag": {"const": True},
        },
    },
}

BASES: dict[str, dict[str, Any]] = {
    "customer": {
        "company_name": "Fujian Example Trading Co., Ltd.", "uscc": "91350100M000100Y43", "industry_code": "423840",
        "employees": 45, "region": "Fujian", "city": "Fuzhou", "postal_code": "350001", "account_manager": "mgr-01",
        "risk_level": "low", "registered_on": "2019-03-01", "relationship_bank": "Fuzhou Gulou sub-branch",
        "business_stage": "existing", "area_type": "urban", "external_id": "C-0001",
    },
    "credit_limit_adjustment": {
        "customer_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "current_limit": D("2000000.00"),
        "requested_limit": D("2500000.00"), "risk_rating": "medium", "reason": "Seasonal working capital",
        "account_manager": "mgr-01", "applied_on": "2024-02-29", "external_id": "A-0001",
    },
    "complaint": {
        "channel": "web", "product": "Checking or savings account", "sub_product": "Checking account",
        "issue": "Managing an account", "sub_issue": "Fees", "narrative": "I was charged a fee twice.",
        "received_on": "2019-05-01", "handled_on": "2019-05-02", "timely": True, "response": "Closed with explanation",
        "satisfaction": 9, "disputed": False, "company": "Example Bank", "state": "CA", "postal_code": "94105",
        "external_id": "CFPB-1",
    },
    "ajv_edges": {
        "digits": "123", "word": "abc_9", "spaced": "a b", "dot": "x", "bounded": "abc", "unanchored": "x1",
        "numbered": {"12": 1},
        "when": "2024-02-29T10:00:00+08:00", "day": "2024-02-29", "mail": "a.b@example.com",
        "link": "https://example.com/a?b=c#d", "amount": D("10.25"), "ratio": D("0.5"), "count": 3,
        "tags": ["a", "b"], "owner": {"name": "Li", "share": D("60")},
        "shareholders": [{"name": "Li", "share": D("60.00")}, {"name": "Wang", "share": D("40.00")}],
        "kind": "a", "flag": True,
    },
}

_DELETE = object()


def base(form: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The form's valid example, keeping only fields the served schema still declares."""
    properties = schema.get("properties", {})
    return {name: copy.deepcopy(value) for name, value in BASES.get(form, {}).items() if name in properties}


def _with(record: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(dict(record))
    for name, value in changes.items():
        if value is _DELETE:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def _body(record: Mapping[str, Any], name: str, token: str) -> str:
    """JSON text of ``record`` with ``name`` set to the raw JSON ``token``."""
    from engine.jsoncodec import dumps

    text = dumps({**record, name: "\u0000PLACEHOLDER\u0000"})
    return text.replace('"\\u0000PLACEHOLDER\\u0000"', token)


# --- hand-written edge cases ------------------------------------------------------------------

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

DATE_PROBES = {
    "leap day 2024-02-29": "2024-02-29", "not leap 2023-02-29": "2023-02-29", "2024-02-30": "2024-02-30",
    "month 13": "2024-13-01", "day 00": "2024-01-00", "no zero padding": "2024-1-5",
    "date-time for a date": "2024-01-05T00:00:00Z", "full-width digits": "２０２４-０１-０５",
    "year 0000": "0000-01-01", "trailing newline": "2024-01-05\n", "slashes": "2024/01/05",
    "century leap 2000-02-29": "2000-02-29", "not leap 1900-02-29": "1900-02-29",
}
DATE_TIME_PROBES = {
    "Z": "2024-01-05T10:00:00Z", "offset +08:00": "2024-01-05T10:00:00+08:00", "fraction": "2024-01-05T10:00:00.123456Z",
    "no offset": "2024-01-05T10:00:00", "lowercase t z": "2024-01-05t10:00:00z", "space separator": "2024-01-05 10:00:00Z",
    "leap second UTC": "2016-12-31T23:59:60Z", "leap second off the minute": "2016-12-31T23:58:60Z",
    "leap second with offset": "2017-01-01T07:59:60+08:00", "hour 24": "2024-01-05T24:00:00Z",
    "2024-02-30": "2024-02-30T10:00:00Z", "offset without colon": "2024-01-05T10:00:00+0800",
    "date only": "2024-01-05", "minute 60": "2024-01-05T10:60:00Z", "offset +24:00": "2024-01-05T10:00:00+24:00",
    "full-width digits": "２０２４-01-05T10:00:00Z", "trailing newline": "2024-01-05T10:00:00Z\n",
}
EMAIL_PROBES = {
    "plain": "a.b@example.com", "plus tag": "a+tag@example.com", "no dot in domain": "a@localhost",
    "unicode local part": "用户@example.com", "unicode domain": "user@例子.广告", "quoted local part": '"a b"@example.com',
    "ip literal": "a@[127.0.0.1]", "double dot": "a..b@example.com", "leading dot": ".a@example.com",
    "no at": "example.com", "two ats": "a@b@example.com", "trailing newline": "a@example.com\n",
    "space": "a b@example.com", "hyphen domain": "a@-example.com", "underscore domain": "a@ex_ample.com",
    "uppercase": "A@EXAMPLE.COM",
}
URI_PROBES = {
    "https": "https://example.com/a?b=c#d", "mailto": "mailto:a@example.com", "urn": "urn:isbn:0451450523",
    "relative path": "/relative/path", "relative no slash": "relative/path", "scheme only": "https:",
    "ipv6 host": "http://[::1]:8080/", "unicode host": "http://例子.测试/", "unicode path": "https://example.com/路径",
    "space": "https://exa mple.com/", "percent encoded": "https://example.com/%E8%B7%AF", "bad percent": "https://example.com/%zz",
    "empty authority": "file:///etc/hosts", "port letters": "http://example.com:80a/", "fragment only": "#frag",
    "backslash": "https:\\\\example.com", "trailing newline": "https://example.com/\n",
}


def hand_cases(served: Mapping[str, Mapping[str, Any]]) -> Iterator[Case]:
    """Edge cases per form; ``served`` maps a form key to its served JSON Schema."""
    if "customer" in served:
        yield from _customer_cases(base("customer", served["customer"]))
    if "credit_limit_adjustment" in served:
        yield from _credit_cases(base("credit_limit_adjustment", served["credit_limit_adjustment"]))
    if "complaint" in served:
        yield from _complaint_cases(base("complaint", served["complaint"]))
    if "ajv_edges" in served:
        yield from _edge_cases(base("ajv_edges", served["ajv_edges"]))


def _customer_cases(b: dict[str, Any]) -> Iterator[Case]:
    def case(name: str, **changes: Any) -> Case:
        return Case("customer", f"customer: {name}", "hand", _with(b, **changes))

    def raw(name: str, field: str, token: str) -> Case:
        return Case("customer", f"customer: {name}", "hand", body=_body(b, field, token))

    yield case("valid")
    yield case("minimal", **{k: _DELETE for k in b if k != "company_name"})
    yield case("company_name missing", company_name=_DELETE)
    yield case("company_name empty string", company_name="")
    yield case("company_name null", company_name=None)
    yield case("company_name whitespace", company_name=" ")
    yield case("company_name 200 chars", company_name="x" * 200)
    yield case("company_name 201 chars", company_name="x" * 201)
    yield case("company_name 200 emoji", company_name="😀" * 200)
    yield case("company_name 201 emoji", company_name="😀" * 201)
    yield case("company_name 100 combining pairs", company_name="e\u0301" * 100)
    yield case("company_name 101 combining pairs", company_name="e\u0301" * 101)
    yield case("company_name chinese", company_name="福建示例贸易有限公司")
    uscc = "91350100M000100Y43"
    yield case("uscc lowercase", uscc=uscc.lower())
    yield case("uscc with I", uscc="91350100I000100Y43")
    yield case("uscc 17 chars", uscc=uscc[:17])
    yield case("uscc 19 chars", uscc=uscc + "0")
    yield case("uscc trailing newline", uscc=uscc + "\n")
    yield case("uscc leading newline", uscc="\n" + uscc)
    yield case("uscc full-width digits", uscc=uscc.translate(FULLWIDTH))
    yield case("uscc full-width letters", uscc="91350100Ｍ000100Ｙ43")
    yield case("uscc number", uscc=91350100000100043)
    yield case("industry_code 2 digits", industry_code="42")
    yield case("industry_code 1 digit", industry_code="4")
    yield case("industry_code 7 digits", industry_code="4238401")
    yield case("industry_code full-width", industry_code="４２３８４０")
    yield case("industry_code arabic-indic", industry_code="423840".translate(ARABIC_INDIC))
    yield case("industry_code trailing newline", industry_code="423840\n")
    yield case("industry_code integer", industry_code=423840)
    yield case("employees 0", employees=0)
    yield case("employees -1", employees=-1)
    yield raw("employees 1.0", "employees", "1.0")
    yield case("employees 1.5", employees=D("1.5"))
    yield raw("employees 1E2", "employees", "1E2")
    yield raw("employees -0", "employees", "-0")
    yield case("employees string", employees="45")
    yield case("employees huge", employees=10**39)
    yield raw("employees beyond request limit", "employees", "1" + "0" * 40)
    yield case("employees 2^53+1", employees=2**53 + 1)
    yield case("postal_code with space and hyphen", postal_code="SW1A 1AA")
    yield case("postal_code 2 chars", postal_code="12")
    yield case("postal_code 11 chars", postal_code="12345678901")
    yield case("postal_code trailing newline", postal_code="350001\n")
    yield case("postal_code unicode letters", postal_code="ÄÖÜ123")
    yield case("risk_level medium", risk_level="medium")
    yield case("risk_level uppercase", risk_level="LOW")
    yield case("risk_level unknown", risk_level="extreme")
    yield case("risk_level empty", risk_level="")
    yield case("risk_level trailing space", risk_level="low ")
    yield case("business_stage new", business_stage="new")
    yield case("area_type list", area_type=["urban"])
    yield case("registered_on 2019-02-29", registered_on="2019-02-29")
    yield case("registered_on 2020-02-29", registered_on="2020-02-29")
    yield case("extra property", nickname="Acme")
    yield case("extra property null", nickname=None)
    yield case("nested empty values", company_name="Acme", region=None, city="")
    yield Case("customer", "customer: not an object (array)", "hand", body='[{"company_name": "Acme"}]')
    yield Case("customer", "customer: duplicate key", "hand", body='{"company_name": "A", "company_name": ""}')


def _credit_cases(b: dict[str, Any]) -> Iterator[Case]:
    def case(name: str, **changes: Any) -> Case:
        return Case("credit_limit_adjustment", f"credit_limit_adjustment: {name}", "hand", _with(b, **changes))

    def raw(name: str, field: str, token: str) -> Case:
        return Case("credit_limit_adjustment", f"credit_limit_adjustment: {name}", "hand", body=_body(b, field, token))

    yield case("valid")
    yield case("money 98765432109876.54", requested_limit=D("98765432109876.54"))
    yield case("money 3 decimals", requested_limit=D("2500000.005"))
    yield case("money trailing zeros past scale", requested_limit=D("2500000.000"))
    yield case("money 1e-7", current_limit=D("0.0000001"))
    yield raw("money 1E2", "requested_limit", "1E2")
    yield raw("money 2.5e6", "requested_limit", "2.5e6")
    yield raw("money -0", "current_limit", "-0")
    yield raw("money -0.0", "current_limit", "-0.0")
    yield raw("money 1e400", "requested_limit", "1e400")
    yield raw("money 41 digits", "requested_limit", "1" + "0" * 40)
    yield raw("money NaN", "requested_limit", "NaN")
    yield case("money 0", current_limit=D("0"))
    yield case("money -0.01", current_limit=D("-0.01"))
    yield case("money -1e-30", current_limit=D("-1E-30"))
    yield case("money string", requested_limit="2500000.00")
    yield case("money boolean", requested_limit=True)
    yield case("money null", requested_limit=None)
    yield case("money empty string", requested_limit="")
    yield case("requested equals current", requested_limit=D("2000000.00"))
    yield case("new limit without reason", current_limit=D("0"), reason=_DELETE)
    yield case("rise over 20% without reason", requested_limit=D("2400000.01"), reason=_DELETE)
    yield case("rise of 20% without reason", requested_limit=D("2400000.00"), reason=_DELETE)
    yield case("decrease", requested_limit=D("1000000.00"))
    yield case("increase_pct sent, a string", increase_pct="a lot")
    yield case("increase_pct sent, a number", increase_pct=D("99.999"))
    yield case("risk_rating high", risk_rating="high")
    yield case("risk_rating unknown", risk_rating="critical")
    yield case("risk_rating number", risk_rating=1)
    yield case("reason 2000 chars", reason="r" * 2000)
    yield case("reason 2001 chars", reason="r" * 2001)
    yield case("reason chinese", reason="季节性流动资金需求")
    yield case("reason whitespace only", reason="   ")
    yield case("customer_id number", customer_id=123)
    yield case("customer_id empty", customer_id="")
    yield case("customer_id missing", customer_id=_DELETE)
    for label, value in DATE_PROBES.items():
        yield case(f"applied_on {label}", applied_on=value)
    yield case("extra property", approved=True)
    yield case("everything missing", **{k: _DELETE for k in b})


def _complaint_cases(b: dict[str, Any]) -> Iterator[Case]:
    def case(name: str, **changes: Any) -> Case:
        return Case("complaint", f"complaint: {name}", "hand", _with(b, **changes))

    def raw(name: str, field: str, token: str) -> Case:
        return Case("complaint", f"complaint: {name}", "hand", body=_body(b, field, token))

    open_complaint = {"handled_on": _DELETE, "timely": _DELETE, "response": _DELETE, "satisfaction": _DELETE}
    yield case("valid")
    yield case("open, not handled", **open_complaint)
    yield case("satisfaction 0", satisfaction=0)
    yield case("satisfaction 10", satisfaction=10)
    yield case("satisfaction 11", satisfaction=11)
    yield case("satisfaction -1", satisfaction=-1)
    yield case("satisfaction 5.5", satisfaction=D("5.5"))
    yield raw("satisfaction 7.0", "satisfaction", "7.0")
    yield raw("satisfaction 7.000000000000000000001", "satisfaction", "7.000000000000000000001")
    yield case("satisfaction string", satisfaction="9")
    yield case("satisfaction 99 while hidden", **{**open_complaint, "satisfaction": 99})
    yield case("timely string while hidden", **{**open_complaint, "timely": "yes"})
    yield case("handled without timely", timely=_DELETE)
    yield case("handled before received", handled_on="2019-04-30")
    yield case("handled same day", handled_on="2019-05-01")
    yield case("timely string", timely="true")
    yield case("timely 1", timely=1)
    yield case("disputed null", disputed=None)
    yield case("channel unknown", channel="carrier pigeon")
    yield case("channel uppercase", channel="Web")
    yield case("channel missing", channel=_DELETE)
    yield case("product empty", product="")
    yield case("product 201 chars", product="p" * 201)
    yield case("narrative 32000 chars", narrative="n" * 32000)
    yield case("narrative 32001 chars", narrative="n" * 32001)
    yield case("narrative with NUL", narrative="a\u0000b")
    yield raw("narrative lone surrogate", "narrative", '"a\\ud800b"')
    yield case("narrative astral", narrative="𠀀" * 10)
    yield case("postal_code 10 chars", postal_code="1234567890")
    yield case("postal_code 11 chars", postal_code="12345678901")
    yield case("postal_code 10 emoji", postal_code="😀" * 10)
    yield case("state empty", state="")
    for label, value in DATE_PROBES.items():
        yield case(f"received_on {label}", received_on=value, handled_on=_DELETE, timely=_DELETE, response=_DELETE,
                   satisfaction=_DELETE)
    yield case("extra property", priority="high")


def _edge_cases(b: dict[str, Any]) -> Iterator[Case]:
    def case(name: str, **changes: Any) -> Case:
        return Case("ajv_edges", f"ajv_edges: {name}", "hand", _with(b, **changes))

    for label, value in {
        "ascii": "123", "full-width": "１２３", "arabic-indic": "١٢٣", "devanagari": "१२३", "superscript": "¹²³",
        "trailing newline": "123\n", "leading newline": "\n123", "4 digits": "1234", "crlf": "123\r\n",
        "trailing U+2028": "123\u2028",
    }.items():
        yield case(f"digits {label}", digits=value)
    for label, value in {
        "ascii": "abc_9", "accented": "café", "chinese": "中文", "kelvin sign": "\u212a", "long s": "\u017f",
        "hyphen": "a-b", "trailing newline": "abc\n",
    }.items():
        yield case(f"word {label}", word=value)
    for label, sep in {
        "space": " ", "tab": "\t", "newline": "\n", "nbsp": "\u00a0", "ideographic space": "\u3000",
        "BOM / ZWNBSP": "\ufeff", "NEL U+0085": "\u0085", "line separator": "\u2028", "mongolian vowel separator": "\u180e",
        "zero width space": "\u200b", "en quad": "\u2000", "vertical tab": "\u000b", "form feed": "\u000c",
    }.items():
        yield case(f"spaced {label}", spaced=f"a{sep}b")
    for label, value in {
        "ascii": "x", "emoji (astral)": "😀", "newline": "\n", "carriage return": "\r", "line separator": "\u2028",
        "paragraph separator": "\u2029", "NEL": "\u0085", "two chars": "ab", "combining pair": "e\u0301", "lone surrogate": None,
    }.items():
        if value is None:
            yield Case("ajv_edges", f"ajv_edges: dot {label}", "hand", body=_body(b, "dot", '"\\udc00"'))
        else:
            yield case(f"dot {label}", dot=value)
    for label, value in {"ascii": "abc", "accented boundary": "abcé", "digit after": "abc1", "space after": "abc d"}.items():
        yield case(f"bounded {label}", bounded=value)
    for label, value in {"digit inside": "ab1cd", "no digit": "abcd", "full-width only": "ab１cd"}.items():
        yield case(f"unanchored {label}", unanchored=value)
    # (date, date-time, email and uri probes: generated for every field with that format)
    for label, value in {"ascii key": {"12": 1}, "full-width key": {"１２": 1}, "key with newline": {"12\n": 1},
                         "string value": {"12": "x"}, "letter key": {"a": 1}, "arabic-indic key": {"١٢": 1}}.items():
        yield case(f"numbered {label}", numbered=value)
    for label, value in {"0.07": D("0.07"), "0.1": D("0.1"), "19.99": D("19.99"), "1.005": D("1.005"), "0.3": D("0.3"),
                         "1e-2": D("0.01"), "4.35": D("4.35"), "123456.78": D("123456.78")}.items():
        yield case(f"amount multipleOf 0.01, {label}", amount=value)
    for label, value in {"0": D("0"), "1e-30": D("1E-30"), "1": D("1"), "1.0000000000000001": D("1.0000000000000001"),
                         "-0.0": None}.items():
        if value is None:
            yield Case("ajv_edges", f"ajv_edges: ratio {label}", "hand", body=_body(b, "ratio", "-0.0"))
        else:
            yield case(f"ratio {label}", ratio=value)
    yield Case("ajv_edges", "ajv_edges: count 10.0", "hand", body=_body(b, "count", "10.0"))
    yield case("count 9.999999999999999999", count=D("9.999999999999999999"))
    yield case("count 10.000000000000000001", count=D("10.000000000000000001"))
    yield case("count 2^53+1 beyond maximum", count=2**53 + 1)
    yield case("tags duplicate", tags=["a", "a"])
    yield case("tags 4 items", tags=["a", "b", "c", "d"])
    yield case("tags empty string item", tags=["a", ""])
    yield case("tags null item", tags=["a", None])
    yield case("tags unique by unicode normalization", tags=["é", "e\u0301"])
    yield case("owner missing name", owner={"share": D("10")})
    yield case("owner name empty", owner={"name": ""})
    yield case("owner extra", owner={"name": "Li", "age": 3})
    yield case("owner share 100.0000001", owner={"name": "Li", "share": D("100.0000001")})
    yield case("shareholders item missing share", shareholders=[{"name": "Li"}])
    yield case("shareholders share null", shareholders=[{"name": "Li", "share": None}])
    yield case("shareholders share 3 decimals", shareholders=[{"name": "Li", "share": D("33.333")}])
    yield case("shareholders share 101", shareholders=[{"name": "Li", "share": D("101")}])
    yield case("shareholders not a list", shareholders={"name": "Li", "share": D("1")})
    yield case("kind b", kind="b")
    yield case("kind c", kind="c")
    yield case("kind number", kind=1)
    yield case("flag false", flag=False)
    yield case("flag 1", flag=1)
    yield case("empty object", **{k: _DELETE for k in b})


# --- probes generated from the served schema --------------------------------------------------

def generated_cases(form: str, schema: Mapping[str, Any]) -> Iterator[Case]:
    """Probe every property of the served schema (recursing into objects and array items)
    from the form's valid example: wrong types, bounds, lengths, enums, formats, patterns."""
    record = base(form, schema)
    for path, node in _properties(schema, ()):
        current = _get(record, path)
        for label, value in _probes(node, current):
            pointer = "/" + "/".join(str(part) for part in path)
            yield Case(form, f"{form}: {pointer} {label}", "generated", _set(record, path, value))


def _properties(node: Mapping[str, Any], path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Mapping[str, Any]]]:
    for name, child in (node.get("properties") or {}).items():
        if not isinstance(child, Mapping) or child.get("readOnly"):
            continue
        yield path + (name,), child
        if isinstance(child.get("properties"), Mapping):
            yield from _properties(child, path + (name,))
        items = child.get("items")
        if isinstance(items, Mapping):
            yield path + (name, 0), items
            if isinstance(items.get("properties"), Mapping):
                yield from _properties(items, path + (name, 0))


def _get(record: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        if isinstance(part, int):
            record = record[part] if isinstance(record, list) and len(record) > part else None
        else:
            record = record.get(part) if isinstance(record, Mapping) else None
    return record


def _set(record: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(record)
    node: Any = result
    for index, part in enumerate(path):
        last = index == len(path) - 1
        following: Any = [] if not last and isinstance(path[index + 1], int) else {}
        if isinstance(part, int):
            if not isinstance(node, list):
                return result
            while len(node) <= part:
                node.append(copy.deepcopy(following) if not last else None)
            if last:
                node[part] = value
            elif not isinstance(node[part], (dict, list)):
                node[part] = following
            node = node[part]
        else:
            if not isinstance(node, dict):
                return result
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = following
                node = node[part]
    return result


def _types(node: Mapping[str, Any]) -> set[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {str(item) for item in declared}
    return set()


_WRONG = {
    "string": [("wrong type number", 12345), ("wrong type boolean", True), ("wrong type array", ["x"])],
    "number": [("wrong type string", "12"), ("wrong type boolean", False), ("wrong type object", {"v": 1})],
    "integer": [("wrong type string", "3"), ("fraction 1.5", D("1.5")), ("integral decimal 2.0", D("2.0")),
                ("wrong type boolean", True)],
    "boolean": [("wrong type string", "true"), ("wrong type number 1", 1), ("wrong type number 0", 0)],
    "object": [("wrong type array", []), ("wrong type string", "x")],
    "array": [("wrong type object", {}), ("wrong type string", "x")],
}


def _probes(node: Mapping[str, Any], current: Any) -> Iterator[tuple[str, Any]]:
    types = _types(node)
    for kind in sorted(types):
        yield from _WRONG.get(kind, [])
    choices = list(node.get("enum") or [])
    choices += [branch["const"] for branch in node.get("oneOf") or [] if isinstance(branch, Mapping) and "const" in branch]
    for value in choices:
        yield f"choice {value!r}", value
        if isinstance(value, str):
            if value.upper() != value:
                yield f"choice {value!r} uppercased", value.upper()
            yield f"choice {value!r} trailing space", value + " "
            yield f"choice {value!r} trailing newline", value + "\n"
    if "string" in types:
        low, high = node.get("minLength"), node.get("maxLength")
        if isinstance(low, int):
            if low > 1:
                yield f"length {low - 1}", "a" * (low - 1)
            if low > 0:
                yield f"length {low}", "a" * low
        if isinstance(high, int):
            yield f"length {high}", "a" * high
            yield f"length {high + 1}", "a" * (high + 1)
            yield f"length {high} astral", "😀" * high
            yield f"length {high + 1} astral", "😀" * (high + 1)
        fmt = node.get("format")
        probes = {"date": DATE_PROBES, "date-time": DATE_TIME_PROBES, "email": EMAIL_PROBES, "uri": URI_PROBES}.get(str(fmt))
        for label, value in (probes or {}).items():
            yield f"format {fmt} {label}", value
        if "pattern" in node:
            sample = current if isinstance(current, str) and current else "A1b2"
            yield "pattern sample + newline", sample + "\n"
            yield "pattern newline + sample", "\n" + sample
            yield "pattern sample + CRLF", sample + "\r\n"
            yield "pattern sample + U+2028", sample + "\u2028"
            yield "pattern sample full-width digits", sample.translate(FULLWIDTH)
            yield "pattern sample arabic-indic digits", sample.translate(ARABIC_INDIC)
            yield "pattern sample lowercased", sample.lower()
            yield "pattern sample uppercased", sample.upper()
            yield "pattern sample + space", sample + " "
            yield "pattern sample + NBSP", sample + "\u00a0"
            yield "pattern sample with U+0130", sample + "\u0130"
    if types & {"number", "integer"}:
        step = D(1) if types == {"integer"} else D("0.01")
        tiny = D(1) if types == {"integer"} else D("1E-20")
        for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            bound = node.get(keyword)
            if isinstance(bound, bool) or not isinstance(bound, (int, float, D)):
                continue
            bound = D(str(bound))
            for label, delta in (("", D(0)), ("- step", -step), ("+ step", step), ("- tiny", -tiny), ("+ tiny", tiny)):
                value = bound + delta
                if types == {"integer"} and value == value.to_integral_value():
                    value = int(value)
                yield f"{keyword} {bound} {label}".strip(), value
        scale = (node.get("x-decimal") or {}).get("scale") if isinstance(node.get("x-decimal"), Mapping) else None
        if isinstance(scale, int):
            yield f"scale {scale} + 1 digit", D("1." + "1" * (scale + 1))
            yield f"scale {scale} trailing zero", D("1." + "0" * (scale + 1))
    if "boolean" in types:
        yield "true", True
        yield "false", False
    if "array" in types:
        yield "empty array", []
    if "object" in types:
        yield "empty object", {}


# --- rows of the real imports -----------------------------------------------------------------

REAL_SOURCES = (
    ("cfpb complaints 2019", "complaint", ("cfpb-complaints", "complaints_sample_2019.csv"), "cfpb_complaints.json"),
    ("sba customers", "customer", ("sba-loans", "SBAcase.11.13.17.csv"), "sba_customers.json"),
    ("sba credit applications", "credit_limit_adjustment", ("sba-loans", "SBAcase.11.13.17.csv"),
     "sba_credit_applications.json"),
)


def real_rows(label: str, form: str, csv_path: Path, mapping_file: str, limit: int | None = None) -> Iterator[Case]:
    """Each row of ``csv_path`` as its import mapping converts it (what ``lowcode import``
    submits). A lookup (``customer_id`` of an application) becomes a stand-in id derived from the
    row: evaluation does not check references. Rows with a cell the mapping cannot convert are
    left out: the import refuses them before any validation."""
    mapping = load_mapping(MAPPINGS / mapping_file, form=form)
    for count, row in enumerate(read_rows(csv_path, mapping.source)):
        if limit is not None and count >= limit:
            return
        data: dict[str, Any] = {}
        convertible = True
        for spec in mapping.fields:
            if isinstance(spec, ConstantField):
                data[spec.target] = copy.deepcopy(spec.value)
                continue
            assert isinstance(spec, (ColumnField, LookupField))
            text = row.cells.get(spec.column, "").strip()
            folded = text.casefold()
            if folded in mapping.null_values or folded in spec.null_values:
                if isinstance(spec, ColumnField) and spec.has_default:
                    data[spec.target] = copy.deepcopy(spec.default)
                continue
            if isinstance(spec, LookupField):
                data[spec.target] = f"{spec.form}-{spec.field}-{text}"
                continue
            if spec.value_map is not None:
                if text in spec.value_map:
                    data[spec.target] = copy.deepcopy(spec.value_map[text])
                elif spec.has_default:
                    data[spec.target] = copy.deepcopy(spec.default)
                else:
                    convertible = False
                continue
            try:
                data[spec.target] = convert_cell(text, spec)
            except BadCell:
                convertible = False
        if convertible:
            yield Case(form, f"{label}: row {row.row_number}", label, data)
