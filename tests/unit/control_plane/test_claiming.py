"""The claim's fairness policy as a pure function: who gets the next free slot."""

from __future__ import annotations

from vqpu_service.domain.claiming import Candidate, at_cap, claim_order


def queue(*owners: str) -> list[Candidate]:
    """Tasks submitted in this order, one per owner named (seq 1, 2, ...)."""
    return [Candidate(seq, f"{owner}-{seq}", owner) for seq, owner in enumerate(owners, start=1)]


def ids(order: list[Candidate]) -> list[str]:
    return [c.task_id for c in order]


def test_one_owner_is_served_oldest_first_as_before() -> None:
    assert ids(claim_order(reversed(queue("alice", "alice", "alice")), {}, None)) == [
        "alice-1",
        "alice-2",
        "alice-3",
    ]


def test_a_later_owner_with_nothing_running_goes_before_an_owner_holding_slots() -> None:
    tasks = queue(*["alice"] * 20, "bob")
    order = claim_order(tasks, {"alice": 2}, None)
    assert ids(order)[0] == "bob-21"
    assert ids(order)[1:] == [f"alice-{n}" for n in range(1, 21)]


def test_owners_holding_the_same_take_turns_oldest_waiting_first() -> None:
    tasks = queue("alice", "alice", "alice", "bob", "bob", "carol")
    assert ids(claim_order(tasks, {}, None)) == ["alice-1", "bob-4", "carol-6", "alice-2", "bob-5", "alice-3"]


def test_slots_go_to_whoever_holds_least_until_holdings_are_level() -> None:
    tasks = queue(*["alice"] * 4, *["bob"] * 4)
    order = claim_order(tasks, {"alice": 0, "bob": 3}, None)
    assert ids(order)[:3] == ["alice-1", "alice-2", "alice-3"]  # alice catches up with bob's 3 first
    assert ids(order)[3:] == ["alice-4", "bob-5", "bob-6", "bob-7", "bob-8"]


def test_an_owner_at_the_running_cap_gets_nothing_and_one_below_it_only_up_to_it() -> None:
    tasks = queue("alice", "alice", "bob", "bob", "bob")
    order = claim_order(tasks, {"alice": 4, "bob": 2}, max_running=4)
    assert ids(order) == ["bob-3", "bob-4"]
    assert at_cap({"alice": 4, "bob": 2, "carol": 9}, 4) == ["alice", "carol"]
    assert at_cap({"alice": 400}, None) == []


def test_nothing_queued_orders_nothing() -> None:
    assert claim_order([], {"alice": 3}, 16) == []
