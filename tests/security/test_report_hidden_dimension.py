"""A report dimension the caller may not see is not merely a dropped column: the rows must not
stay grouped (and sorted) by it, or its values' counts are read off the row split. The bank's
analyst may not see the cash-rich tag (it reads fields the analyst sees only masked), yet reads
customers_by_tag, whose dimensions are region and that tag."""
from __future__ import annotations

from engine import Engine, Principal

ANALYST = Principal("an-1", frozenset({"analyst"}))


def test_a_hidden_dimension_is_grouped_away_not_just_left_out(bank_roles: Engine) -> None:
    rich = bank_roles.submit("customer", {"company_name": "Rich Co", "region": "Fujian"})["id"]
    bank_roles.submit("customer", {"company_name": "Plain Co", "region": "Fujian"})
    bank_roles.submit("customer", {"company_name": "Far Co", "region": "Hainan"})
    bank_roles.submit("deposit_account", {"customer_id": rich, "product": "current", "average_balance": 9000000})
    assert bank_roles.run_report("customers_by_tag")["rows"] == [["Fujian", False, 2 - 1, 0], ["Fujian", True, 1, 1],
                                                                  ["Hainan", False, 1, 0]]
    seen = bank_roles.run_report("customers_by_tag", actor=ANALYST)
    assert "cash_rich" in seen["meta"]["hidden"]
    assert [column["name"] for column in seen["columns"]] == ["region", "customers"]
    assert seen["rows"] == [["Fujian", 2], ["Hainan", 1]]  # one row per region: no split by the tag


def test_rows_are_not_ranked_by_a_hidden_measure(bank_roles: Engine) -> None:
    bank_roles.upload({"kind": "report", "key": "probe_ranking", "title": "Probe", "source": {"form": "customer"},
                       "dimensions": [{"name": "region", "field": "region"}],
                       "measures": [{"name": "customers", "agg": "count"},
                                    {"name": "named_x", "agg": "count",
                                     "where": {"field": "company_name", "op": "eq", "value": "X"}}],
                       "sort": [{"by": "named_x", "order": "desc"}, {"by": "region"}]})
    bank_roles.upload({"kind": "roles", "key": "probe_roles", "title": "Probe", "roles": {
        "probe_analyst": {"reports": ["probe_ranking"], "forms": {"customer": {"read": ["region"], "mask": {"company_name": {}}}}}}})
    for name, region in [("A", "Anhui"), ("X", "Zhejiang"), ("X", "Zhejiang"), ("B", "Zhejiang")]:
        bank_roles.submit("customer", {"company_name": name, "region": region})
    assert bank_roles.run_report("probe_ranking")["rows"] == [["Zhejiang", 3, 2], ["Anhui", 1, 0]]
    seen = bank_roles.run_report("probe_ranking", actor=Principal("pa-1", frozenset({"probe_analyst"})))
    assert seen["meta"]["hidden"] == ["named_x"]
    assert seen["rows"] == [["Anhui", 1], ["Zhejiang", 3]]  # by region only: no ranking by the hidden count
