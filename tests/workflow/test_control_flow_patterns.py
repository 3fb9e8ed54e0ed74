"""The Workflow Control-Flow Patterns (van der Aalst et al.), one test or a few each, named
after the pattern: a small process uploaded, driven through ``Engine.submit``/``act``/
``run_timers`` with an injected clock, and the trace, the tasks and the timer rows checked."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from workflow_support import (
    ADMIN,
    CLERK,
    by_user,
    countersign,
    end,
    event_count,
    events,
    install,
    only_task,
    open_tasks,
    outbox_count,
    person,
    process,
    start,
    statuses,
    task,
    timer_rows,
    transitions,
)

from engine import Conflict, DefinitionInvalid, Engine, FakeClock, Forbidden, ValidationFailed

A = person("ann", "ra")
B = person("bob", "rb")
C = person("cat", "rc")
SLA = {"due": "PT4H", "remind": [{"after": "PT1H", "every": "PT1H"}], "escalate": [{"after": "PT6H", "do": "notify", "role": "lead"}]}


# -- WCP1 sequence --------------------------------------------------------------------------------

def test_wcp1_sequence_runs_each_step_after_the_previous(engine: Engine) -> None:
    install(engine, {"a": task("ra", approve="b"), "b": task("rb", approve="c"), "c": task("rc", approve="done"),
                     "done": end("approved")}, start="a")
    instance_id = start(engine)
    for state, actor, following in (("a", A, "b"), ("b", B, "c"), ("c", C, "done")):
        assert [t["state"] for t in open_tasks(engine, instance_id)] == [state]
        result = engine.act(only_task(engine, instance_id)["id"], "approve", actor)
        assert result["state"] == following
    final = engine.instance(instance_id)
    assert (final["status"], final["outcome"], final["positions"]) == ("completed", "approved", [])
    assert transitions(engine, instance_id) == [("a", "b", "approve"), ("b", "c", "approve"), ("c", "done", "approve")]
    assert outbox_count(engine, "instance.state_changed", instance_id) == 3
    assert outbox_count(engine, "instance.completed", instance_id, outcome="approved") == 1
    assert [step["state"] for step in engine.timeline(instance_id, ADMIN)["steps"]] == ["a", "b", "c", "done"]


# -- WCP2 parallel split, WCP3 synchronization -----------------------------------------------------

def _split_join(join_policy: str = "all", b_steps: int = 1, sla: dict[str, Any] | None = None,
                when: dict[str, Any] | None = None) -> dict[str, Any]:
    branches: list[dict[str, Any]] = [{"start": "a"}, {"start": "b1"}]
    for branch, flag in zip(branches, ("legal", "risk")):
        if when is not None and flag in when:
            branch["when"] = when[flag]
    states: dict[str, Any] = {
        "split": {"type": "parallel", "branches": branches, "join": "merge", "join_policy": join_policy},
        "a": task("ra", sla=sla, approve="merge", reject="no"),
        "merge": task("rc", approve="done"),
        "done": end("approved"), "no": end("rejected"),
    }
    for step in range(1, b_steps + 1):
        states[f"b{step}"] = task("rb", sla=sla, approve=f"b{step + 1}" if step < b_steps else "merge")
    return states


def test_wcp2_parallel_split_opens_every_branch_at_once(engine: Engine) -> None:
    install(engine, _split_join(), start="split")
    instance_id = start(engine)
    view = engine.instance(instance_id)
    assert view["state"] == "split"
    assert sorted(view["positions"]) == ["a", "b1"]
    assert sorted(t["state"] for t in open_tasks(engine, instance_id)) == ["a", "b1"]
    assert sorted(to for _, to, _ in transitions(engine, instance_id)) == ["a", "b1"]
    assert outbox_count(engine, "task.created", instance_id) == 2


def test_wcp3_synchronization_waits_for_every_branch(engine: Engine) -> None:
    install(engine, _split_join(), start="split")
    instance_id = start(engine)
    after_a = engine.act(only_task(engine, instance_id, "a")["id"], "approve", A)
    assert (after_a["state"], after_a["positions"]) == ("split", ["b1"])
    assert open_tasks(engine, instance_id, "merge") == []
    assert event_count(engine, instance_id, "joined") == 0
    after_b = engine.act(only_task(engine, instance_id, "b1")["id"], "approve", B)
    assert (after_b["state"], after_b["positions"]) == ("merge", ["merge"])
    assert len(open_tasks(engine, instance_id, "merge")) == 1
    assert [(e["from"], e["to"]) for e in events(engine, instance_id, "joined")] == [("split", "merge")]


def test_wcp3_a_branch_that_ends_the_case_closes_the_other_branch(engine: Engine) -> None:
    install(engine, _split_join(sla=SLA), start="split")
    instance_id = start(engine)
    b_task = only_task(engine, instance_id, "b1")["id"]
    result = engine.act(only_task(engine, instance_id, "a")["id"], "reject", A)
    assert (result["status"], result["outcome"]) == ("completed", "rejected")
    assert statuses(engine, instance_id, "b1") == ["cancelled"]
    assert {row.status for row in timer_rows(engine, instance_id, b_task)} == {"cancelled"}
    with pytest.raises(Conflict) as caught:
        engine.act(b_task, "approve", B)
    assert caught.value.code == "task.not_open"


# -- WCP4 exclusive choice, WCP5 simple merge ------------------------------------------------------

ROUTE = {"type": "auto", "transitions": [
    {"to": "big", "when": {">": [{"var": "amount"}, 1000]}},
    {"to": "medium", "when": {">": [{"var": "amount"}, 100]}},
    {"to": "small"}]}


def _choice_states() -> dict[str, Any]:
    return {"route": ROUTE, "big": task("rb", approve="review"), "medium": task("rb", approve="review"),
            "small": task("ra", approve="review"), "review": task("rc", approve="done"), "done": end("approved")}


@pytest.mark.parametrize(("amount", "chosen", "index", "default"),
                         [(5000, "big", 0, False), (1001, "big", 0, False), (1000, "medium", 1, False),
                          (101, "medium", 1, False), (100, "small", 2, True), (None, "small", 2, True)])
def test_wcp4_exclusive_choice_takes_the_first_transition_that_holds(
        engine: Engine, amount: int | None, chosen: str, index: int, default: bool) -> None:
    install(engine, _choice_states(), start="route")
    instance_id = start(engine, {} if amount is None else {"amount": amount})
    assert engine.instance(instance_id)["state"] == chosen
    assert [t["state"] for t in open_tasks(engine, instance_id)] == [chosen]
    (decision,) = [h for h in engine.instance(instance_id)["history"] if h["event"] == "transition"]
    assert (decision["from"], decision["to"]) == ("route", chosen)
    assert decision["detail"]["transition"] == index
    assert decision["detail"]["default"] is default
    assert decision["detail"]["inputs"] == {"amount": amount}


def test_wcp4_exclusive_choice_on_an_action_guard(engine: Engine) -> None:
    guarded = [{"to": "senior", "when": {">=": [{"var": "amount"}, 500]}}, {"to": "done"}]
    install(engine, {"check": task("ra", approve=guarded), "senior": task("rb", approve="done"),
                     "done": end("approved")}, start="check")
    low, high = start(engine, {"amount": 499}), start(engine, {"amount": 500})
    assert engine.act(only_task(engine, low)["id"], "approve", A)["status"] == "completed"
    assert engine.act(only_task(engine, high)["id"], "approve", A)["state"] == "senior"


def test_wcp4_exclusive_choice_without_a_default_is_refused(engine: Engine) -> None:
    states = _choice_states()
    states["route"] = {"type": "auto", "transitions": ROUTE["transitions"][:2]}
    del states["small"]
    with pytest.raises(DefinitionInvalid) as refused:
        install(engine, states, start="route")
    assert [(i.path, i.code) for i in refused.value.issues] == [("/states/route/transitions/1", "definition.missing_default")]
    assert engine.definitions() == [d for d in engine.definitions() if d["kind"] == "form"]


def test_wcp5_simple_merge_continues_once_from_whichever_path_arrived(engine: Engine) -> None:
    install(engine, _choice_states(), start="route")
    for amount, path, actor in ((5000, "big", B), (5, "small", A)):
        instance_id = start(engine, {"amount": amount})
        engine.act(only_task(engine, instance_id)["id"], "approve", actor)
        assert [t["state"] for t in open_tasks(engine, instance_id)] == ["review"]
        assert transitions(engine, instance_id) == [("route", path, None), (path, "review", "approve")]
        assert engine.act(only_task(engine, instance_id)["id"], "approve", C)["outcome"] == "approved"


# -- WCP6 multi-choice, WCP7 structured synchronizing merge ------------------------------------------

WHEN = {"legal": {"var": "legal"}, "risk": {"var": "risk"}}


@pytest.mark.parametrize(("legal", "risk", "opened"),
                         [(True, True, ["a", "b1"]), (True, False, ["a"]), (False, True, ["b1"])])
def test_wcp6_multi_choice_starts_the_branches_whose_rule_holds(
        engine: Engine, legal: bool, risk: bool, opened: list[str]) -> None:
    install(engine, _split_join(when=WHEN), start="split")
    instance_id = start(engine, {"legal": legal, "risk": risk})
    assert sorted(t["state"] for t in open_tasks(engine, instance_id)) == opened
    assert sorted(engine.instance(instance_id)["positions"]) == opened


def test_wcp7_synchronizing_merge_waits_only_for_started_branches(engine: Engine) -> None:
    install(engine, _split_join(when=WHEN), start="split")
    instance_id = start(engine, {"legal": True, "risk": False})
    result = engine.act(only_task(engine, instance_id, "a")["id"], "approve", A)
    assert (result["state"], result["positions"]) == ("merge", ["merge"])
    assert event_count(engine, instance_id, "joined") == 1
    assert not any(t["state"].startswith("b") for t in result["tasks"])


def test_wcp7_no_branch_started_goes_straight_to_the_join(engine: Engine) -> None:
    install(engine, _split_join(when=WHEN), start="split")
    instance_id = start(engine, {"legal": False, "risk": False})
    view = engine.instance(instance_id)
    assert (view["state"], view["positions"]) == ("merge", ["merge"])
    assert [t["state"] for t in view["tasks"]] == ["merge"]
    assert event_count(engine, instance_id, "joined") == 1


def test_wcp7_join_waits_for_a_multi_step_branch_to_finish(engine: Engine) -> None:
    install(engine, _split_join(b_steps=2), start="split")
    instance_id = start(engine)
    engine.act(only_task(engine, instance_id, "a")["id"], "approve", A)
    engine.act(only_task(engine, instance_id, "b1")["id"], "approve", B)
    assert engine.instance(instance_id)["positions"] == ["b2"]
    assert open_tasks(engine, instance_id, "merge") == []
    assert engine.act(only_task(engine, instance_id, "b2")["id"], "approve", B)["state"] == "merge"
    steps = engine.timeline(instance_id, CLERK)["steps"]  # the join is one step, entered once
    assert [(s["state"], s["result"]) for s in steps] == [("a", "approve"), ("b1", "approve"), ("b2", "approve"),
                                                          ("merge", None)]


# -- WCP8 multi-merge (not supported) ------------------------------------------------------------

def test_wcp8_multi_merge_is_refused_at_upload(engine: Engine) -> None:
    """Two branches that both continue into one shared state (which would then run once per
    branch) are refused: a state belongs to one branch only."""
    states = {"split": {"type": "parallel", "branches": [{"start": "a"}, {"start": "b1"}], "join": "done"},
              "a": task("ra", approve="shared"), "b1": task("rb", approve="shared"),
              "shared": task("rc", approve="done"), "done": end("approved")}
    with pytest.raises(DefinitionInvalid) as refused:
        install(engine, states, start="split")
    assert [(i.path, i.code, dict(i.params)) for i in refused.value.issues] == [
        ("/states/split/branches/1", "definition.state_in_two_branches", {"state": "shared"})]


def test_wcp8_two_branches_may_end_the_case_in_one_shared_end_state(engine: Engine) -> None:
    states = {"split": {"type": "parallel", "branches": [{"start": "a"}, {"start": "b1"}], "join": "done"},
              "a": task("ra", approve="done", reject="no"), "b1": task("rb", approve="done", reject="no"),
              "done": end("approved"), "no": end("rejected")}
    install(engine, states, start="split")
    instance_id = start(engine)
    assert engine.act(only_task(engine, instance_id, "b1")["id"], "reject", B)["outcome"] == "rejected"
    assert statuses(engine, instance_id, "a") == ["cancelled"]
    steps = engine.timeline(instance_id, CLERK)["steps"]
    assert [(s["state"], s["left_at"] is not None, s["result"]) for s in steps] == [
        ("a", True, "cancelled"), ("b1", True, "reject"), ("no", False, None)]
    other = start(engine)
    engine.act(only_task(engine, other, "a")["id"], "approve", A)
    assert engine.act(only_task(engine, other, "b1")["id"], "approve", B)["outcome"] == "approved"


# -- WCP9 structured discriminator ----------------------------------------------------------------

def test_wcp9_discriminator_first_branch_continues_and_cancels_the_other(engine: Engine, clock: FakeClock) -> None:
    install(engine, _split_join("first", b_steps=2, sla=SLA), start="split")
    instance_id = start(engine)
    engine.act(only_task(engine, instance_id, "b1")["id"], "approve", B)
    late = only_task(engine, instance_id, "b2")["id"]
    clock.advance(timedelta(minutes=30))
    result = engine.act(only_task(engine, instance_id, "a")["id"], "approve", A)
    assert (result["state"], result["positions"]) == ("merge", ["merge"])
    kept = {t["state"]: (t["status"], t["action"], t["acted_by"]) for t in result["tasks"]}
    assert kept == {"a": ("completed", "approve", "ann"), "b1": ("completed", "approve", "bob"),
                    "b2": ("cancelled", None, None), "merge": ("open", None, None)}
    assert [(e["from"], e["to"]) for e in events(engine, instance_id, "branch_cancelled")] == [("b2", None)]
    assert event_count(engine, instance_id, "joined") == 1
    assert {row.status for row in timer_rows(engine, instance_id, late)} == {"cancelled"}
    steps = engine.timeline(instance_id, CLERK)["steps"]
    assert [(s["state"], s["left_at"] is not None, s["result"]) for s in steps] == [
        ("a", True, "approve"), ("b1", True, "approve"), ("b2", True, "cancelled"), ("merge", False, None)]
    with pytest.raises(Conflict) as caught:
        engine.act(late, "approve", B)
    assert caught.value.code == "task.not_open"
    clock.advance(timedelta(days=2))
    assert engine.run_timers()["fired"] == 0
    assert len(open_tasks(engine, instance_id, "merge")) == 1


# -- WCP10 arbitrary cycles ------------------------------------------------------------------------

APPLICANT = {"rule": {"var": "process.started_by"}}


def _rework_states(**extra: Any) -> dict[str, Any]:
    draft = task(assignee=APPLICANT, submit=[{"to": "senior", "when": {">=": [{"var": "process.send_backs"}, 2]}},
                                             {"to": "review"}])
    draft["four_eyes"] = False
    return {"draft": draft, "review": task("ra", approve="done", rework="draft", **extra),
            "senior": task("rb", approve="done"), "done": end("approved")}


def test_wcp10_a_loop_through_an_action_reopens_the_earlier_step_each_time(engine: Engine) -> None:
    install(engine, _rework_states(), start="draft")
    instance_id = start(engine)
    for _ in range(3):
        engine.act(only_task(engine, instance_id, "draft")["id"], "submit", CLERK)
        engine.act(only_task(engine, instance_id, "review")["id"], "rework", A)
    draft_tasks = [t for t in engine.instance(instance_id)["tasks"] if t["state"] == "draft"]
    assert sorted(t["entry"] for t in draft_tasks) == [1, 2, 3, 4]
    assert [t["assignee_user"] for t in draft_tasks] == ["clerk"] * 4
    assert transitions(engine, instance_id).count(("review", "draft", "rework")) == 3


def test_wcp10_send_back_loops_until_the_limit(engine: Engine) -> None:
    install(engine, _rework_states(), start="draft", max_send_backs=2)
    instance_id = start(engine)
    for round_number in (1, 2):
        assert engine.act(only_task(engine, instance_id, "draft")["id"], "submit", CLERK)["state"] == "review"
        back = engine.send_back(only_task(engine, instance_id, "review")["id"], "draft", A, "fix the amount")
        assert back["state"] == "draft", round_number
    # two send-backs so far: the guard reading process.send_backs routes the resubmission upwards
    assert engine.act(only_task(engine, instance_id, "draft")["id"], "submit", CLERK)["state"] == "senior"
    assert transitions(engine, instance_id).count(("review", "draft", "send_back")) == 2
    assert sorted(t["status"] for t in engine.instance(instance_id)["tasks"] if t["state"] == "review") == [
        "completed", "completed"]


def test_wcp10_send_back_over_the_limit_is_refused_and_changes_nothing(engine: Engine) -> None:
    install(engine, _rework_states(), start="draft", max_send_backs=1)
    instance_id = start(engine)
    engine.act(only_task(engine, instance_id, "draft")["id"], "submit", CLERK)
    engine.send_back(only_task(engine, instance_id, "review")["id"], "draft", A)
    engine.act(only_task(engine, instance_id, "draft")["id"], "submit", CLERK)
    review = only_task(engine, instance_id, "review")["id"]
    with pytest.raises(Conflict) as caught:
        engine.send_back(review, "draft", A)
    assert (caught.value.code, dict(caught.value.params)) == ("instance.send_back_limit", {"limit": 1})
    assert only_task(engine, instance_id, "review")["id"] == review
    assert engine.instance(instance_id)["state"] == "review"


@pytest.mark.parametrize(("target", "why"), [("senior", "never visited"), ("review", "itself"),
                                              ("done", "not a human step"), ("nowhere", "unknown")])
def test_wcp10_send_back_only_to_an_earlier_human_step(engine: Engine, target: str, why: str) -> None:
    install(engine, _rework_states(), start="draft")
    instance_id = start(engine)
    engine.act(only_task(engine, instance_id, "draft")["id"], "submit", CLERK)
    with pytest.raises(Conflict) as caught:
        engine.send_back(only_task(engine, instance_id, "review")["id"], target, A)
    assert caught.value.code == "instance.bad_send_back_target", why


def test_wcp10_a_cycle_of_automatic_states_fails_closed(engine: Engine) -> None:
    install(engine, {"a": {"type": "auto", "transitions": [{"to": "b"}]},
                     "b": {"type": "auto", "transitions": [{"to": "done", "when": {"var": "legal"}}, {"to": "a"}]},
                     "done": end("approved")}, start="a")
    assert engine.instance(start(engine, {"legal": True}))["outcome"] == "approved"
    with pytest.raises(ValidationFailed) as caught:
        start(engine, {"legal": False})
    assert [(i.code, dict(i.params)) for i in caught.value.issues] == [
        ("process.stuck", {"reason": "more than 100 automatic steps"})]
    assert engine.records("request")["total"] == 1


def test_wcp10_send_back_inside_a_branch_keeps_the_join_waiting(engine: Engine) -> None:
    install(engine, _split_join(b_steps=2), start="split")
    instance_id = start(engine)
    engine.act(only_task(engine, instance_id, "b1")["id"], "approve", B)
    back = engine.send_back(only_task(engine, instance_id, "b2")["id"], "b1", person("bert", "rb"))
    assert (back["state"], sorted(back["positions"])) == ("split", ["a", "b1"])
    assert engine.act(only_task(engine, instance_id, "a")["id"], "approve", A)["positions"] == ["b1"]
    engine.act(only_task(engine, instance_id, "b1")["id"], "approve", B)
    assert engine.act(only_task(engine, instance_id, "b2")["id"], "approve", person("bert", "rb"))["state"] == "merge"
    with pytest.raises(Conflict) as caught:  # not back across the join into a branch
        engine.send_back(only_task(engine, instance_id, "merge")["id"], "a", C)
    assert caught.value.code == "instance.bad_send_back_target"


# -- WCP14 multiple instances with a priori runtime knowledge ------------------------------------------

def _listed_signers(engine: Engine) -> None:
    install(engine, {"sign": countersign([{"field": "approvers"}], approve=("all", "yes"), reject=("one", "no")),
                     "yes": end("approved"), "no": end("rejected")}, start="sign")


def test_wcp14_one_task_per_user_listed_in_the_record(engine: Engine) -> None:
    _listed_signers(engine)
    three = start(engine, {"approvers": ["u1", "u2", "u3"]})
    two = start(engine, {"approvers": ["u4", "u5", "u4"]})
    assert sorted(by_user(engine, three)) == ["u1", "u2", "u3"]
    assert sorted(by_user(engine, two)) == ["u4", "u5"]  # a repeated id signs once
    tasks = by_user(engine, three)
    for user in ("u1", "u2"):
        assert engine.act(tasks[user], "approve", person(user))["state"] == "sign"
    final = engine.act(tasks["u3"], "approve", person("u3"))
    assert (final["status"], final["outcome"]) == ("completed", "approved")


def test_wcp14_a_listed_user_cannot_act_on_another_users_task(engine: Engine) -> None:
    _listed_signers(engine)
    instance_id = start(engine, {"approvers": ["u1", "u2"]})
    with pytest.raises(Forbidden) as caught:
        engine.act(by_user(engine, instance_id)["u2"], "approve", person("u1"))
    assert caught.value.code == "task.not_assignee"


def test_wcp14_an_empty_list_refuses_the_submission(engine: Engine) -> None:
    _listed_signers(engine)
    with pytest.raises(ValidationFailed) as caught:
        start(engine, {"approvers": []})
    assert caught.value.issues[0].code == "process.stuck"
    assert engine.records("request")["total"] == 0


def test_wcp14_the_applicant_is_never_one_of_the_runtime_signers(engine: Engine) -> None:
    _listed_signers(engine)
    try:
        instance_id = start(engine, {"approvers": ["clerk", "u2"]})
    except ValidationFailed:
        return  # refusing the submission is also acceptable
    assert sorted(by_user(engine, instance_id)) == ["u2"]
    final = engine.act(by_user(engine, instance_id)["u2"], "approve", person("u2"))
    assert (final["status"], final["outcome"]) == ("completed", "approved")


def test_wcp14_a_list_naming_only_the_applicant_refuses_the_submission(engine: Engine) -> None:
    _listed_signers(engine)
    with pytest.raises(ValidationFailed) as caught:
        start(engine, {"approvers": ["clerk"]})
    assert caught.value.issues[0].code == "process.stuck"
    assert engine.records("request")["total"] == 0


# -- WCP16 deferred choice ------------------------------------------------------------------------

DEFERRED = {"due": "PT4H", "timeout": {"after": "PT8H", "action": "expire"}}


def _deferred(engine: Engine) -> str:
    install(engine, {"offer": task("ra", sla=DEFERRED, accept="yes", expire="lapsed"),
                     "yes": end("accepted"), "lapsed": end("lapsed")}, start="offer")
    return start(engine)


def test_wcp16_deferred_choice_person_first_the_timeout_never_happens(engine: Engine, clock: FakeClock) -> None:
    instance_id = _deferred(engine)
    offer = only_task(engine, instance_id)["id"]
    clock.advance(timedelta(hours=7, minutes=59))
    assert engine.act(offer, "accept", A)["outcome"] == "accepted"
    clock.advance(timedelta(days=1))
    assert engine.run_timers() == {"fired": 0, "cancelled": 0, "failed": 0, "lost": 0, "errors": []}
    assert [(row.kind, row.status) for row in timer_rows(engine, instance_id)] == [("due", "cancelled"), ("timeout", "cancelled")]
    assert [(e["action"], e["actor"]) for e in events(engine, instance_id, "task_completed")] == [("accept", "ann")]


def test_wcp16_deferred_choice_timeout_first_the_person_gets_409(engine: Engine, clock: FakeClock) -> None:
    instance_id = _deferred(engine)
    offer = only_task(engine, instance_id)["id"]
    clock.advance(timedelta(hours=8))
    assert engine.run_timers()["fired"] == 2  # the due mark at 4 h, then the timeout at 8 h
    view = engine.instance(instance_id)
    assert (view["status"], view["outcome"]) == ("completed", "lapsed")
    (completed,) = events(engine, instance_id, "task_completed")
    assert (completed["action"], completed["actor"], completed["detail"]) == ("expire", "system", {"timeout": True})
    with pytest.raises(Conflict) as caught:
        engine.act(offer, "accept", A)
    assert caught.value.code == "task.not_open"
    assert event_count(engine, instance_id, "task_completed") == 1


# -- WCP18 milestone ------------------------------------------------------------------------------

def _two_signers(engine: Engine, sla: dict[str, Any] | None = None) -> str:
    install(engine, {"sign": countersign([{"role": "ra"}, {"role": "rb"}], sla=sla, approve=("all", "yes"),
                                         reject=("one", "no")),
                     "yes": end("approved"), "no": end("rejected")}, start="sign")
    return start(engine)


def test_wcp18_milestone_withdraw_is_allowed_before_the_first_approval(engine: Engine) -> None:
    instance_id = _two_signers(engine)
    result = engine.withdraw(instance_id, CLERK, "changed my mind")
    assert (result["status"], result["outcome"], result["positions"]) == ("withdrawn", None, [])
    assert statuses(engine, instance_id, "sign") == ["cancelled", "cancelled"]
    (withdrawn,) = events(engine, instance_id, "withdrawn")
    assert (withdrawn["actor"], withdrawn["comment"]) == ("clerk", "changed my mind")


def test_wcp18_milestone_withdraw_is_refused_after_the_first_approval(engine: Engine) -> None:
    instance_id = _two_signers(engine)
    engine.act(open_tasks(engine, instance_id)[0]["id"], "approve", person("signer", "ra", "rb"))
    with pytest.raises(Conflict) as caught:
        engine.withdraw(instance_id, CLERK)
    assert caught.value.code == "instance.already_decided"
    view = engine.instance(instance_id)
    assert (view["status"], len(open_tasks(engine, instance_id))) == ("active", 1)


def test_wcp18_only_the_applicant_may_withdraw(engine: Engine) -> None:
    instance_id = _two_signers(engine)
    for stranger in (person("mallory"), ADMIN, person("system", "system")):
        with pytest.raises(Forbidden) as caught:
            engine.withdraw(instance_id, stranger)
        assert caught.value.code == "instance.not_applicant"
    assert engine.instance(instance_id)["status"] == "active"


# -- WCP19 cancel activity --------------------------------------------------------------------------

def test_wcp19_a_task_closed_by_a_deciding_sibling_never_fires_its_timers(engine: Engine, clock: FakeClock) -> None:
    install(engine, {"sign": countersign([{"role": "ra"}, {"role": "rb"}], sla=SLA, approve=("one", "yes"),
                                         reject=("all", "no")),
                     "yes": end("approved"), "no": end("rejected")}, start="sign")
    instance_id = start(engine)
    b_task = next(t for t in open_tasks(engine, instance_id) if t["assignee_role"] == "rb")["id"]
    assert len(timer_rows(engine, instance_id, b_task)) == 3
    clock.advance(timedelta(minutes=10))
    closed_at = clock.now()
    a_task = next(t for t in open_tasks(engine, instance_id) if t["assignee_role"] == "ra")["id"]
    engine.act(a_task, "approve", A)
    rows = timer_rows(engine, instance_id, b_task)
    assert [(row.kind, row.status) for row in rows] == [("due", "cancelled"), ("remind", "cancelled"), ("escalate", "cancelled")]
    assert {row.fired_at for row in rows} == {closed_at}
    clock.advance(timedelta(days=3))
    assert engine.run_timers() == {"fired": 0, "cancelled": 0, "failed": 0, "lost": 0, "errors": []}
    assert outbox_count(engine, "notify.remind", instance_id) == 0
    assert event_count(engine, instance_id, "reminded") == 0


# -- WCP20 cancel case ------------------------------------------------------------------------------

def test_wcp20_cancel_case_closes_every_task_and_timer(engine: Engine, clock: FakeClock) -> None:
    install(engine, _split_join(sla=SLA), start="split")
    instance_id = start(engine)
    clock.advance(timedelta(hours=1))
    assert engine.run_timers()["fired"] == 2  # one reminder per branch, before the cancel
    task_ids = [t["id"] for t in open_tasks(engine, instance_id)]
    result = engine.cancel_instance(instance_id, ADMIN, "duplicate request")
    assert (result["status"], result["positions"], result["outcome"]) == ("cancelled", [], None)
    assert sorted(t["status"] for t in result["tasks"]) == ["cancelled", "cancelled"]
    assert {row.status for row in timer_rows(engine, instance_id)} == {"cancelled"}
    assert outbox_count(engine, "instance.state_changed", instance_id, status="cancelled") == 1
    clock.advance(timedelta(days=5))
    assert engine.run_timers() == {"fired": 0, "cancelled": 0, "failed": 0, "lost": 0, "errors": []}
    assert event_count(engine, instance_id, "reminded") == 2
    for task_id, actor in zip(task_ids, (A, B)):
        with pytest.raises(Conflict) as caught:
            engine.act(task_id, "approve", actor)
        assert caught.value.code == "task.not_open"
    operations: list[Callable[[], object]] = [lambda: engine.cancel_instance(instance_id, ADMIN),
                                              lambda: engine.withdraw(instance_id, CLERK),
                                              lambda: engine.urge(instance_id, CLERK)]
    for operation in operations:
        with pytest.raises(Conflict) as caught:
            operation()
        assert (caught.value.code, dict(caught.value.params)) == ("instance.not_active", {"status": "cancelled"})


def test_wcp20_only_supervisors_cancel_a_case(engine: Engine) -> None:
    instance_id = _two_signers(engine)
    for actor in (CLERK, A, person("lead", "lead")):
        with pytest.raises(Forbidden) as caught:
            engine.cancel_instance(instance_id, actor)
        assert caught.value.code == "instance.cancel_forbidden"
    assert engine.instance(instance_id)["status"] == "active"


# -- every pattern survives a restart; running instances keep their version ----------------------------

def test_an_instance_continues_on_a_fresh_engine_between_steps(engine: Engine, database_url: str,
                                                                clock: FakeClock) -> None:
    """Reload mode: nothing about a running instance lives in the memory of the engine that
    started it."""
    install(engine, _split_join(sla=SLA), start="split")
    instance_id = start(engine)
    engine.act(only_task(engine, instance_id, "a")["id"], "approve", A)
    restarted = Engine(database_url, clock=clock)
    try:
        assert restarted.instance(instance_id)["positions"] == ["b1"]
        clock.advance(timedelta(hours=1))
        assert restarted.run_timers()["fired"] == 1  # b1's reminder; a's timers were cancelled
        result = restarted.act(only_task(restarted, instance_id, "b1")["id"], "approve", B)
        assert (result["state"], result["positions"]) == ("merge", ["merge"])
    finally:
        restarted.close()
    assert engine.act(only_task(engine, instance_id, "merge")["id"], "approve", C)["outcome"] == "approved"


def test_a_running_instance_stays_on_the_version_it_started_with(engine: Engine) -> None:
    install(engine, {"a": task("ra", approve="done"), "done": end("approved")}, start="a")
    old = start(engine)
    assert engine.upload(process({"a": task("ra", approve="b"), "b": task("rb", approve="done"), "done": end("approved")},
                                 start="a"))["version"] == 2
    new = start(engine)
    assert (engine.instance(old)["process_version"], engine.instance(new)["process_version"]) == (1, 2)
    assert engine.act(only_task(engine, old)["id"], "approve", A)["outcome"] == "approved"
    assert engine.act(only_task(engine, new)["id"], "approve", A)["state"] == "b"
