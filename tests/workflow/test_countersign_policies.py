"""Countersign policies with exact counts: all (one rejection rejects at once), any (the first
approval decides; the other signers' tasks are cancelled but kept), at least n, at least p %,
the fallback when everybody signed without a quorum; distinct signers and four eyes; approvers
added to a countersign."""
from __future__ import annotations

from typing import Any

import pytest
from workflow_support import (
    ADMIN,
    CLERK,
    by_user,
    countersign,
    end,
    install,
    open_tasks,
    outbox_count,
    person,
    start,
    statuses,
    transitions,
)

from engine import Conflict, Engine, Forbidden

USERS = [f"u{n}" for n in range(1, 6)]


def _sign(engine: Engine, approve: Any, reject: Any, signers: int, *, reject_first: bool = False) -> str:
    actions: dict[str, Any] = {"approve": (approve, "yes"), "reject": (reject, "no")}
    if reject_first:
        actions = {"reject": actions["reject"], "approve": actions["approve"]}
    install(engine, {"sign": countersign([{"field": "approvers"}], **actions),
                     "yes": end("approved"), "no": end("rejected")}, start="sign")
    return start(engine, {"approvers": USERS[:signers]})


def _play(engine: Engine, instance_id: str, votes: list[str]) -> dict[str, Any]:
    """Each signer in turn (u1, u2, ...) casts the given vote; returns the last answer."""
    tasks = by_user(engine, instance_id)
    result: dict[str, Any] = {}
    for user, vote in zip(USERS, votes):
        result = engine.act(tasks[user], vote, person(user))
    return result


def _decided_after(engine: Engine, instance_id: str, votes: list[str]) -> int | None:
    """After how many votes the step was decided (None if it was not)."""
    tasks = by_user(engine, instance_id)
    for count, (user, vote) in enumerate(zip(USERS, votes), start=1):
        if engine.act(tasks[user], vote, person(user))["status"] != "active":
            return count
    return None


# -- all ---------------------------------------------------------------------------------------------

def test_all_approvals_needed_the_state_moves_only_after_the_last(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "one", 3)
    assert _decided_after(engine, instance_id, ["approve"] * 3) == 3
    assert engine.instance(instance_id)["outcome"] == "approved"
    assert statuses(engine, instance_id, "sign") == ["completed"] * 3


@pytest.mark.parametrize("position", [0, 1, 2])
def test_all_one_rejection_rejects_at_once(engine: Engine, position: int) -> None:
    instance_id = _sign(engine, "all", "one", 3)
    votes = ["approve"] * position + ["reject"]
    assert _decided_after(engine, instance_id, votes) == position + 1
    view = engine.instance(instance_id)
    assert (view["status"], view["outcome"]) == ("completed", "rejected")
    assert statuses(engine, instance_id, "sign") == sorted(["completed"] * (position + 1) + ["cancelled"] * (2 - position))
    assert transitions(engine, instance_id) == [("sign", "no", "reject")]
    assert outbox_count(engine, "instance.state_changed", instance_id) == 1


# -- any -------------------------------------------------------------------------------------------

def test_any_first_approval_finishes_and_siblings_stay_listed_as_cancelled(engine: Engine) -> None:
    instance_id = _sign(engine, "one", "all", 3)
    tasks = by_user(engine, instance_id)
    result = engine.act(tasks["u2"], "approve", person("u2"), "fine by me")
    assert (result["status"], result["outcome"]) == ("completed", "approved")
    listed = {t["assignee_user"]: (t["status"], t["action"], t["acted_by"], t["completed_at"] is not None)
              for t in result["tasks"]}
    assert listed == {"u1": ("cancelled", None, None, True), "u2": ("completed", "approve", "u2", True),
                      "u3": ("cancelled", None, None, True)}
    with pytest.raises(Conflict) as caught:
        engine.act(tasks["u1"], "approve", person("u1"))
    assert (caught.value.code, dict(caught.value.params)) == ("task.not_open", {"status": "cancelled"})


def test_any_rejections_need_everybody(engine: Engine) -> None:
    instance_id = _sign(engine, "one", "all", 3)
    assert _decided_after(engine, instance_id, ["reject", "reject", "reject"]) == 3
    assert engine.instance(instance_id)["outcome"] == "rejected"


def test_any_two_rejections_then_an_approval_approves(engine: Engine) -> None:
    instance_id = _sign(engine, "one", "all", 3)
    assert _play(engine, instance_id, ["reject", "reject", "approve"])["outcome"] == "approved"


# -- at least n --------------------------------------------------------------------------------------

def test_min_two_of_three(engine: Engine) -> None:
    instance_id = _sign(engine, {"min": 2}, {"min": 2}, 3)
    assert _decided_after(engine, instance_id, ["approve", "approve", "approve"]) == 2
    assert engine.instance(instance_id)["outcome"] == "approved"
    assert statuses(engine, instance_id, "sign") == ["cancelled", "completed", "completed"]


def test_min_two_of_three_split_vote_waits_for_the_third(engine: Engine) -> None:
    instance_id = _sign(engine, {"min": 2}, {"min": 2}, 3)
    assert _decided_after(engine, instance_id, ["approve", "reject", "reject"]) == 3
    assert engine.instance(instance_id)["outcome"] == "rejected"


def test_min_above_the_number_of_signers_means_all_of_them(engine: Engine) -> None:
    instance_id = _sign(engine, {"min": 5}, "one", 3)
    assert _decided_after(engine, instance_id, ["approve"] * 3) == 3
    assert engine.instance(instance_id)["outcome"] == "approved"


# -- percentages -----------------------------------------------------------------------------------

def test_sixty_percent_of_five_needs_exactly_three(engine: Engine) -> None:
    instance_id = _sign(engine, {"percent": 60}, {"percent": 50}, 5)
    assert _decided_after(engine, instance_id, ["approve", "reject", "approve", "reject", "approve"]) == 5
    assert engine.instance(instance_id)["outcome"] == "approved"
    assert statuses(engine, instance_id, "sign") == ["completed"] * 5


def test_sixty_percent_of_five_reached_early_cancels_the_rest(engine: Engine) -> None:
    instance_id = _sign(engine, {"percent": 60}, {"percent": 50}, 5)
    assert _decided_after(engine, instance_id, ["approve"] * 5) == 3
    assert statuses(engine, instance_id, "sign") == ["cancelled", "cancelled", "completed", "completed", "completed"]


def test_fifty_percent_of_five_rounds_up_to_three(engine: Engine) -> None:
    instance_id = _sign(engine, {"percent": 60}, {"percent": 50}, 5)
    assert _decided_after(engine, instance_id, ["reject", "reject", "approve", "reject"]) == 4
    assert engine.instance(instance_id)["outcome"] == "rejected"


@pytest.mark.parametrize(("percent", "signers", "needed"), [(60, 4, 3), (50, 4, 2), (1, 5, 1), (100, 5, 5), (34, 3, 2)])
def test_percentages_round_up(engine: Engine, percent: int, signers: int, needed: int) -> None:
    instance_id = _sign(engine, {"percent": percent}, "all", signers)
    assert _decided_after(engine, instance_id, ["approve"] * signers) == needed


# -- nobody reached a quorum --------------------------------------------------------------------------

@pytest.mark.parametrize(("reject_first", "outcome"), [(False, "approved"), (True, "rejected")])
def test_a_tie_after_everybody_signed_goes_to_the_action_declared_first(engine: Engine, reject_first: bool,
                                                                         outcome: str) -> None:
    instance_id = _sign(engine, {"percent": 75}, {"percent": 75}, 4, reject_first=reject_first)
    assert _decided_after(engine, instance_id, ["approve", "reject", "reject", "approve"]) == 4
    assert engine.instance(instance_id)["outcome"] == outcome


def test_most_votes_win_when_no_quorum_is_reached(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "all", 3)
    assert _decided_after(engine, instance_id, ["reject", "approve", "reject"]) == 3
    assert engine.instance(instance_id)["outcome"] == "rejected"


# -- distinct signers, four eyes ----------------------------------------------------------------------

def _role_signers(engine: Engine, four_eyes: bool | None = None) -> str:
    state = countersign([{"role": "r1"}, {"role": "r2"}], approve=("all", "yes"), reject=("one", "no"))
    if four_eyes is not None:
        state = {**state, "type": "task", "assignee": {"role": "r1"}}
        del state["assignees"]
        state["actions"] = {"approve": {"transitions": [{"to": "yes"}]}, "reject": {"transitions": [{"to": "no"}]}}
        state["four_eyes"] = four_eyes
    install(engine, {"sign": state, "yes": end("approved"), "no": end("rejected")}, start="sign")
    return start(engine, actor=person("clerk", "r1"))


def test_distinct_signers_one_person_cannot_fill_two_slots(engine: Engine) -> None:
    instance_id = _role_signers(engine)
    tasks = {t["assignee_role"]: t["id"] for t in open_tasks(engine, instance_id)}
    both = person("busy", "r1", "r2")
    assert engine.act(tasks["r1"], "approve", both)["state"] == "sign"
    with pytest.raises(Forbidden) as caught:
        engine.act(tasks["r2"], "approve", both)
    assert caught.value.code == "task.already_signed"
    assert statuses(engine, instance_id, "sign") == ["completed", "open"]
    assert engine.act(tasks["r2"], "approve", person("other", "r2"))["outcome"] == "approved"


def test_distinct_signers_a_rejection_by_the_same_person_is_refused_too(engine: Engine) -> None:
    instance_id = _role_signers(engine)
    tasks = {t["assignee_role"]: t["id"] for t in open_tasks(engine, instance_id)}
    both = person("busy", "r1", "r2")
    engine.act(tasks["r1"], "approve", both)
    with pytest.raises(Forbidden):
        engine.act(tasks["r2"], "reject", both)
    assert engine.instance(instance_id)["status"] == "active"


def test_four_eyes_the_applicant_cannot_sign_their_own_request(engine: Engine) -> None:
    instance_id = _role_signers(engine)
    task_id = next(t["id"] for t in open_tasks(engine, instance_id) if t["assignee_role"] == "r1")
    with pytest.raises(Forbidden) as caught:
        engine.act(task_id, "approve", person("clerk", "r1"))
    assert caught.value.code == "task.own_request"
    assert statuses(engine, instance_id, "sign") == ["open", "open"]


def test_four_eyes_holds_for_supervisors_too(engine: Engine) -> None:
    install(engine, {"sign": countersign([{"role": "admin"}, {"role": "r2"}], approve=("all", "yes"),
                                         reject=("one", "no")), "yes": end("approved"), "no": end("rejected")},
            start="sign")
    instance_id = start(engine, actor=ADMIN)
    task_id = next(t["id"] for t in open_tasks(engine, instance_id) if t["assignee_role"] == "admin")
    with pytest.raises(Forbidden) as caught:
        engine.act(task_id, "approve", ADMIN)
    assert caught.value.code == "task.own_request"


def test_four_eyes_false_lets_the_applicant_act(engine: Engine) -> None:
    instance_id = _role_signers(engine, four_eyes=False)
    assert engine.act(open_tasks(engine, instance_id)[0]["id"], "approve", person("clerk", "r1"))["outcome"] == "approved"


def test_four_eyes_a_task_cannot_be_transferred_or_added_to_the_applicant(engine: Engine) -> None:
    instance_id = _role_signers(engine)
    task_id = next(t["id"] for t in open_tasks(engine, instance_id) if t["assignee_role"] == "r2")
    with pytest.raises(Forbidden) as transfer:
        engine.transfer_task(task_id, "clerk", person("signer", "r2"))
    with pytest.raises(Forbidden) as added:
        engine.add_approver(task_id, "clerk", "parallel", person("signer", "r2"))
    assert (transfer.value.code, added.value.code) == ("task.own_request", "task.bad_added_approver")


# -- approvers added to a countersign ----------------------------------------------------------------

def test_a_parallel_approver_is_one_more_signer_for_all(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "one", 2)
    tasks = by_user(engine, instance_id)
    added = engine.add_approver(tasks["u1"], "u9", "parallel", person("u1"))
    assert sorted(t["assignee_user"] for t in open_tasks(engine, instance_id)) == ["u1", "u2", "u9"]
    assert [t["origin"] for t in added["tasks"] if t["assignee_user"] == "u9"] == ["added:parallel"]
    _play(engine, instance_id, ["approve", "approve"])
    assert engine.instance(instance_id)["status"] == "active"
    final = engine.act(by_user(engine, instance_id)["u9"], "approve", person("u9"))
    assert final["outcome"] == "approved"


def test_adding_an_approver_after_the_step_is_decided_is_refused(engine: Engine) -> None:
    instance_id = _sign(engine, "one", "all", 2)
    tasks = by_user(engine, instance_id)
    engine.act(tasks["u1"], "approve", person("u1"))
    with pytest.raises(Conflict) as caught:
        engine.add_approver(tasks["u2"], "u9", "parallel", person("u2"))
    assert caught.value.code == "task.not_open"


def test_the_same_person_cannot_be_added_twice(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "one", 2)
    tasks = by_user(engine, instance_id)
    with pytest.raises(Conflict) as caught:
        engine.add_approver(tasks["u1"], "u2", "parallel", person("u1"))
    assert (caught.value.code, dict(caught.value.params)) == ("task.already_approver", {"user": "u2"})


def test_an_approver_added_before_acts_first_then_the_signer(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "one", 2)
    tasks = by_user(engine, instance_id)
    engine.add_approver(tasks["u1"], "u9", "before", person("u1"))
    assert statuses(engine, instance_id, "sign") == ["open", "open", "waiting"]
    with pytest.raises(Conflict):
        engine.act(tasks["u1"], "approve", person("u1"))
    engine.act(by_user(engine, instance_id)["u9"], "approve", person("u9"))
    assert sorted(by_user(engine, instance_id)) == ["u1", "u2"]
    _play(engine, instance_id, ["approve", "approve"])
    assert engine.instance(instance_id)["outcome"] == "approved"


def test_an_approver_added_after_a_signer_has_the_deciding_say(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "one", 2)
    tasks = by_user(engine, instance_id)
    engine.add_approver(tasks["u1"], "u9", "after", person("u1"))
    engine.act(tasks["u1"], "approve", person("u1"))
    engine.act(by_user(engine, instance_id)["u9"], "reject", person("u9"))
    assert engine.instance(instance_id)["outcome"] == "rejected"


def test_a_countersign_task_cannot_be_transferred_to_someone_who_signed(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "one", 2)
    tasks = by_user(engine, instance_id)
    engine.act(tasks["u1"], "approve", person("u1"))
    with pytest.raises(Conflict) as caught:
        engine.transfer_task(tasks["u2"], "u1", person("u2"))
    assert (caught.value.code, dict(caught.value.params)) == ("task.already_approver", {"user": "u1"})
    assert by_user(engine, instance_id)["u2"] == tasks["u2"]  # nothing changed
    engine.transfer_task(tasks["u2"], "u7", person("u2"))
    assert engine.act(by_user(engine, instance_id)["u7"], "approve", person("u7"))["outcome"] == "approved"


def test_a_countersign_task_cannot_be_transferred_to_another_signer(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "one", 3)
    tasks = by_user(engine, instance_id)
    with pytest.raises(Conflict) as caught:
        engine.transfer_task(tasks["u2"], "u3", ADMIN)
    assert caught.value.code == "task.already_approver"
    assert sorted(by_user(engine, instance_id)) == ["u1", "u2", "u3"]


def test_an_approver_added_after_signs_in_place_of_the_signer(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "one", 2)
    tasks = by_user(engine, instance_id)
    engine.add_approver(tasks["u1"], "u9", "after", person("u1"))
    engine.act(tasks["u2"], "approve", person("u2"))
    # u1's approval alone does not complete "all": u9 has the say for u1's seat
    assert engine.act(tasks["u1"], "approve", person("u1"))["status"] == "active"
    final = engine.act(by_user(engine, instance_id)["u9"], "approve", person("u9"))
    assert (final["status"], final["outcome"]) == ("completed", "approved")


def test_the_applicant_sees_one_current_line_for_a_countersign(engine: Engine) -> None:
    instance_id = _sign(engine, "all", "one", 3)
    current = engine.timeline(instance_id, CLERK)["current"]
    assert [item["state"] for item in current] == ["sign"]
    assert set(current[0]) == {"state", "title", "since", "due_at", "overdue"}
    assert len(engine.timeline(instance_id, ADMIN)["current"]) == 3
