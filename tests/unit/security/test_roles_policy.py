"""Roles definitions compiled and resolved without a database: masks, the union of several
roles, the checks at upload, and the field functions others call (engine.security.fields)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from engine.errors import Forbidden, ValidationFailed
from engine.security import SYSTEM, Principal
from engine.security.access import UNRESTRICTED, resolve
from engine.security.fields import check_filterable, check_writable, event_view, readable_fields, readable_view
from engine.security.roles import Mask, compile_roles


def _form(key: str, fields: list[str], refs: dict[str, str] | None = None) -> Any:
    columns = tuple(SimpleNamespace(name=name) for name in fields)
    return SimpleNamespace(key=key, columns=columns, refs=refs or {},
                           column=lambda name: next((c for c in columns if c.name == name), None))


FORMS = {
    "party": _form("party", ["name", "id_number", "phone", "owner", "office"]),
    "order": _form("order", ["party_id", "amount", "note"], {"party_id": "party"}),
}
PROCESS = SimpleNamespace(states={"review": object(), "done": object()})


def _compile(roles: dict[str, Any]) -> Any:
    spec, issues = compile_roles({"kind": "roles", "key": "r", "title": "R", "roles": roles}, 1, FORMS.get,
                                 {"flow": PROCESS}.get)
    assert issues == [], issues
    return spec


POLICY = _compile({
    "clerk": {"forms": {"party": {"read": ["*"], "mask": {"id_number": {"show_last": 4}, "phone": {}}}},
              "submit": ["party"], "act": {"flow": ["review"]}, "may": ["audit.read"]},
    "owner": {"forms": {"party": {"scope": [{"field": "owner", "equals": "principal.id"}], "read": ["name", "phone"],
                                  "write": ["phone"]},
                        "order": {"scope": [{"via": ["party_id"], "field": "office", "equals": "principal.attributes.office"}]}}},
})


@pytest.mark.parametrize(("mask", "value", "shown"), [
    (Mask(0, 4), "110101199003071234", "****1234"),
    (Mask(0, 4), "12345678", "****"),  # too short: would show half of it
    (Mask(0, 4), "123456789", "****6789"),
    (Mask(2, 0), "Fujian Tea", "Fu****"),
    (Mask(0, 0), "anything", "****"),
    (Mask(0, 4), 12345678901, "****"),  # numbers are never shown in part
    (Mask(0, 4), None, None),
])
def test_a_mask_never_shows_the_length_or_most_of_the_value(mask: Mask, value: Any, shown: Any) -> None:
    assert mask.apply(value) == shown


def test_one_role_masks_what_it_does_not_read_in_full() -> None:
    access = resolve([POLICY], Principal("c", frozenset({"clerk"})))
    data = {"name": "Ann", "id_number": "110101199003071234", "phone": "13800001111", "owner": "u1"}
    assert readable_view("party", data, access) == {"name": "Ann", "id_number": "****1234", "phone": "****",
                                                    "owner": "u1"}
    assert readable_fields(FORMS["party"], access) == {"name": "full", "id_number": "masked", "phone": "masked",
                                                       "owner": "full", "office": "full"}
    assert readable_view("order", {"amount": 1}, access) == {}  # no grant on the form: nothing


def test_several_roles_give_the_union_a_full_read_beats_a_mask() -> None:
    both = resolve([POLICY], Principal("c", frozenset({"clerk", "owner"})))
    view = both.form("party")
    assert view is not None and view.reads("phone") and not view.reads("id_number")
    assert view.mask_of("id_number") == Mask(0, 4)
    assert view.scope is None  # the clerk sees every party, so the union does too
    assert both.may_submit("party") and both.may_act("flow", "review") and not both.may_act("flow", "done")
    only_owner = resolve([POLICY], Principal("o", frozenset({"owner"})))
    assert only_owner.form("party").scope is not None and not only_owner.may("audit.read")


def test_a_principal_without_a_role_of_the_policy_may_do_nothing() -> None:
    nobody = resolve([POLICY], Principal("x", frozenset({"unknown"})))
    assert nobody.restricted and nobody.form("party") is None
    assert not nobody.may_submit("party") and not nobody.may_read_report("any") and not nobody.may("audit.read")


def test_without_a_policy_and_for_the_engine_everything_is_allowed() -> None:
    for access in (resolve([], Principal("x")), resolve([POLICY], SYSTEM), UNRESTRICTED):
        assert not access.restricted and access.may_act("flow", "done") and access.form("party") is not None
        assert readable_view("party", {"id_number": "1"}, access) == {"id_number": "1"}
        check_writable("party", {"id_number": "1"}, access)
        check_filterable(FORMS["party"], ["no_such"], access)  # left to the caller's own unknown-field check


def test_writing_unwritable_fields_names_each_of_them() -> None:
    owner = resolve([POLICY], Principal("o", frozenset({"owner"})))
    check_writable("party", {"phone": "1"}, owner)
    with pytest.raises(Forbidden) as caught:
        check_writable("party", {"phone": "1", "name": "B", "id_number": "2"}, owner)
    assert [(issue.path, issue.code) for issue in caught.value.issues] == [
        ("/id_number", "field.write_denied"), ("/name", "field.write_denied")]


def test_an_unknown_and_an_unreadable_filter_get_the_same_answer() -> None:
    clerk = resolve([POLICY], Principal("c", frozenset({"clerk"})))
    answers = []
    for name in ("id_number", "no_such"):
        with pytest.raises(ValidationFailed) as caught:
            check_filterable(FORMS["party"], [name], clerk, known=[c.name for c in FORMS["party"].columns])
        issue = caught.value.issues[0]
        answers.append((issue.code, issue.message("en").replace(name, "X")))
    assert answers[0] == answers[1] == ("field.not_readable", answers[0][1])
    check_filterable(FORMS["party"], ["name"], clerk, known=["name"])


def test_event_payloads_keep_only_what_the_recipient_sees() -> None:
    owner = resolve([POLICY], Principal("o", frozenset({"owner"})))
    payload = {"record": "r1", "form": "party", "fields": ["name", "id_number", "owner"],
               "data": {"name": "Ann", "id_number": "1101", "owner": "o"}}
    assert event_view("party", payload, owner) == {"record": "r1", "form": "party", "fields": ["name"],
                                                   "data": {"name": "Ann"}}


@pytest.mark.parametrize(("role", "path", "code"), [
    ({"forms": {"nope": {}}}, "/roles/x/forms/nope", "definition.unknown_form"),
    ({"forms": {"party": {"read": ["nope"]}}}, "/roles/x/forms/party/read/0", "definition.unknown_field"),
    ({"forms": {"party": {"write": ["name", "nope"]}}}, "/roles/x/forms/party/write/1", "definition.unknown_field"),
    ({"forms": {"party": {"mask": {"nope": {}}}}}, "/roles/x/forms/party/mask/nope", "definition.unknown_field"),
    ({"forms": {"order": {"scope": [{"via": ["amount"], "field": "owner", "equals": "principal.id"}]}}},
     "/roles/x/forms/order/scope/0/via/0", "definition.unknown_field"),
    ({"forms": {"order": {"scope": [{"via": ["party_id"], "field": "nope", "equals": "principal.id"}]}}},
     "/roles/x/forms/order/scope/0/field", "definition.unknown_field"),
    ({"act": {"flow": ["nope"]}}, "/roles/x/act/flow/0", "definition.unknown_state"),
    ({"act": {"nope": ["*"]}}, "/roles/x/act/nope", "definition.unknown_process"),
    ({"submit": ["nope"]}, "/roles/x/submit/0", "definition.unknown_form"),
])
def test_a_roles_definition_naming_what_does_not_exist_is_refused_at_its_pointer(role: Any, path: str, code: str) -> None:
    spec, issues = compile_roles({"kind": "roles", "key": "r", "title": "R", "roles": {"x": role}}, 1, FORMS.get,
                                 {"flow": PROCESS}.get)
    assert spec is None
    assert [(issue.path, issue.code) for issue in issues] == [(path, code)]


def test_a_routing_decision_shows_only_the_inputs_the_reader_may_read() -> None:
    from engine.security.fields import decision_view

    clerk = resolve([POLICY], Principal("c", frozenset({"clerk"})))
    detail = {"rule": "triage", "transition": 0, "inputs": {"name": "Ann", "id_number": "110101199003071234",
                                                             "process.started_by": "u1"}}
    assert decision_view("party", detail, clerk) == {"rule": "triage", "transition": 0,
                                                     "inputs": {"name": "Ann", "id_number": "****1234",
                                                                "process.started_by": "u1"}}
    owner = resolve([POLICY], Principal("o", frozenset({"owner"})))
    assert decision_view("party", detail, owner)["inputs"] == {"name": "Ann"}
    assert decision_view("party", detail, UNRESTRICTED) == detail
    assert decision_view("party", {"to": "u2"}, clerk) == {"to": "u2"}
