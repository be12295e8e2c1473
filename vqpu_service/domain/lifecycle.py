"""The five-state task lifecycle (D2) as one static transition table (docs/lifecycle.md)."""

from __future__ import annotations

from enum import StrEnum

from vqpu_service.domain.errors import IllegalTransition


class TaskState(StrEnum):
    QUEUED = "QUEUED"  # admitted, waiting for an agent's claim
    RUNNING = "RUNNING"  # owned by exactly one agent under one claim token
    COMPLETED = "COMPLETED"  # terminal: the owner reported a result
    FAILED = "FAILED"  # terminal: the owner reported a failure, or an admin force-failed it
    CANCELLED = "CANCELLED"  # terminal: cancelled while queued, or the owner confirmed a cancel

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class Action(StrEnum):
    CLAIM = "claim"
    REPORT_RUNNING = "running"
    REPORT_COMPLETED = "completed"
    REPORT_FAILED = "failed"
    REPORT_CANCELLED = "cancelled"
    CANCEL = "cancel"
    REQUEUE = "requeue"
    FORCE_FAIL = "force-fail"


TERMINAL = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED})
REPORTS = frozenset({Action.REPORT_RUNNING, Action.REPORT_COMPLETED, Action.REPORT_FAILED, Action.REPORT_CANCELLED})
TERMINAL_REPORTS = REPORTS - {Action.REPORT_RUNNING}

Q, R = TaskState.QUEUED, TaskState.RUNNING
TRANSITIONS: dict[tuple[TaskState, Action], TaskState] = {
    (Q, Action.CLAIM): R,
    (R, Action.REPORT_RUNNING): R,
    (R, Action.REPORT_COMPLETED): TaskState.COMPLETED,
    (R, Action.REPORT_FAILED): TaskState.FAILED,
    (Q, Action.CANCEL): TaskState.CANCELLED,
    (R, Action.CANCEL): R,  # sets cancel_requested; the owner finishes it with a cancelled report
    (R, Action.REPORT_CANCELLED): TaskState.CANCELLED,
    (R, Action.REQUEUE): Q,  # fences the claim token
    (Q, Action.FORCE_FAIL): TaskState.FAILED,
    (R, Action.FORCE_FAIL): TaskState.FAILED,
}


def next_state(state: TaskState, action: Action) -> TaskState:
    """The state `action` leads to from `state`; terminal states absorb everything."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise IllegalTransition(
            f"cannot {action} a {state} task" + (" (terminal states are final)" if state.terminal else ""),
            {"state": str(state), "action": str(action)},
        ) from None
