"""Which QUEUED tasks a claim takes, and in what order: fair across owners, capped per owner.

The policy (docs/lifecycle.md, "Fair claiming"): each next slot goes to the owner holding the fewest
slots now (RUNNING, plus what this claim already gave them), ties to the owner whose oldest waiting
task is oldest; within an owner, oldest first. An owner at the RUNNING cap is skipped. With one
owner this is plain FIFO; with several it is round-robin that first lifts whoever holds least.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A QUEUED task a claim could take: enough to order it, nothing of its content."""

    seq: int
    task_id: str
    owner: str


def claim_order(
    candidates: Iterable[Candidate], running: Mapping[str, int], max_running: int | None
) -> list[Candidate]:
    """The candidates in the order a claim should take them, dropping any that would put its owner
    over `max_running` (None: no cap) if every one before it were taken."""
    queues: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: c.seq, reverse=True):  # popped from the end: oldest first
        queues.setdefault(c.owner, []).append(c)
    turns = [(running.get(owner, 0), queue[-1].seq, owner) for owner, queue in queues.items()]
    heapq.heapify(turns)
    order: list[Candidate] = []
    while turns:
        held, _, owner = heapq.heappop(turns)
        if max_running is not None and held >= max_running:
            continue  # what an owner holds only grows during a claim: none of its others can go
        queue = queues[owner]
        order.append(queue.pop())
        if queue:
            heapq.heappush(turns, (held + 1, queue[-1].seq, owner))
    return order


def binds(pinned_epoch: int | None, current_epoch: int) -> int:
    """The epoch a claim binds a task to: the one it pinned at submission, else the device's current one
    as committed when the claim runs (D5)."""
    return pinned_epoch if pinned_epoch is not None else current_epoch


def at_cap(running: Mapping[str, int], max_running: int | None) -> list[str]:
    """The owners a claim cannot give another task to."""
    if max_running is None:
        return []
    return sorted(owner for owner, held in running.items() if held >= max_running)
