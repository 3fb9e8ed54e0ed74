"""Random agreement of the decimal evaluator of iterating rules (7e3ac25 and the fast paths after
it) with raw datalogic-py: map/filter/reduce/all/some/none over arrays of objects, scalars,
nulls, nested lists, strings that look like numbers (" 1", "1e2", "0x10", "1_000", "+1", ".5",
"NaN", Arabic-Indic digits), zero in its forms (0, -0.0, 0.00), 64-bit edges and huge integers,
a missing or non-array source. Every answer must equal the core's (numbers compared as doubles,
9 places) or both must fail; never a non-RuleError exception. Passes (no bug found; floats, which
records never hold, differ for -0.0 only). Covers inputs no existing agreement test draws."""
import json
import math
import random
import sys
from decimal import Decimal

import datalogic_py
from engine.rules import compile_rule, RuleError
from engine.rules.limits import OPS_BUDGET
from engine.rules.compiler import _native_json, _from_native, _normalise
NATIVE = datalogic_py.Engine(config={"ops_budget": OPS_BUDGET, "division_by_zero": "throw_error"})
R = random.Random(20261204)
SCALARS = [Decimal("0.1"), Decimal("1E+39"), Decimal("-0.0"), "NaN", "Infinity", "-0", "0x10", "1_000", " ", "\t1", "+1", ".5", "5.", Decimal("-0"), 10**30, "١", 0, 1, -1, 2, 3, 10, Decimal("2.5"), Decimal("0.5"), Decimal("-0.25"), "1", "2", "0", "", "abc", "1.5", " 1", "1e2", Decimal("0.00"), Decimal("-1E-40"),
           None, True, False, [], [1], [0], {}, "true", "null", 2**62, -(2**63), 2**70]
BIN = ["+", "-", "*", "/", "%", "==", "!=", "===", "!==", "<", ">", "<=", ">=", "and", "or", "min", "max"]
UN = ["!", "!!", "-", "+"]
def leaf(scope):
    c = R.random()
    if c < 0.45:
        if scope == "reduce":
            return {"var": R.choice(["current", "accumulator", "current.a", "current.b", "accumulator.a"])}
        if scope == "item":
            return {"var": R.choice(["a", "b", "", "a.b", "0"])}
        return {"var": R.choice(["x", "y", "items.0", "items"])}
    v = R.choice(SCALARS)
    if isinstance(v, Decimal):
        v = Decimal(v)
    if isinstance(v, (list, dict)):
        return 1
    return v
def expr(depth, scope):
    if depth <= 0 or R.random() < 0.3:
        return leaf(scope)
    c = R.random()
    if c < 0.6:
        op = R.choice(BIN)
        n = 2 if op not in ("+", "*", "and", "or", "min", "max") else R.choice([1, 2, 3])
        return {op: [expr(depth - 1, scope) for _ in range(n)]}
    if c < 0.75:
        return {R.choice(UN): [expr(depth - 1, scope)]}
    if c < 0.85:
        return {"if": [expr(depth - 1, scope) for _ in range(R.choice([2, 3]))]}
    if scope is None:
        return iteration(depth - 1)
    return leaf(scope)
def iteration(depth):
    op = R.choice(["map", "filter", "reduce", "all", "some", "none"])
    src = {"var": R.choice(["items", "items", "x", "nope"])}
    if op == "reduce":
        return {"reduce": [src, expr(depth, "reduce"), expr(1, None) if R.random() < .3 else R.choice([0, 1, Decimal("0.5"), None, "1"])]}
    return {op: [src, expr(depth, "item")]}
def item():
    c = R.random()
    if c < 0.6:
        d = {}
        for k in ("a", "b"):
            if R.random() < 0.8:
                d[k] = R.choice(SCALARS)
        return d
    return R.choice(SCALARS)
def norm(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float, Decimal)):
        try:
            f = float(v)
        except OverflowError:
            return ("bignum", str(v)[:30])
        return ("num", round(f, 9) if math.isfinite(f) else str(f))
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    return repr(v)

ROUNDS = 700


def test_iterating_rules_agree_with_the_native_core() -> None:
    bad = 0
    first = []
    stat = {"compiled": 0, "decimal": 0, "none": 0}
    for n in range(ROUNDS):
        rule = iteration(R.choice([1, 2, 3])) if R.random() < .8 else expr(3, None)
        comp, issues = compile_rule(rule, "")
        if comp is None:
            stat['none'] += 1
            continue
        stat['compiled'] += 1
        stat['decimal'] += comp.decimal
        for _ in range(4):
            data = {"items": [item() for _ in range(R.choice([0, 1, 2, 3, 5]))] if R.random() < .9 else R.choice([None, "s", 3, {}]),
                    "x": R.choice(SCALARS), "y": R.choice(SCALARS)}
            try:
                got = ("ok", norm(comp.evaluate(data)))
            except RuleError as e:
                got = ("err",)
            except Exception as e:
                got = ("CRASH", repr(e))
            try:
                nat = NATIVE.compile(_native_json(_normalise(rule)))
                want = ("ok", norm(_from_native(nat.evaluate(_native_json(data)))))
            except Exception as e:
                want = ("err",)
            if got != want:
                bad += 1
                first.append((rule, data, got, want))
    assert stat["compiled"] > ROUNDS // 2 and stat["decimal"] > ROUNDS // 2, stat
    assert bad == 0, (bad, first)
