"""The agent's own note in a run directory: which claim it holds (`claim.json`, created 0600 so that only
the agent's account ever reads its claim token; never read by the runner), and, once nothing more will
be reported, how that ended.

The agent keeps no other durable state: after a restart these notes, the run directories' outcomes,
the scheduler and the control plane's heartbeat reply are all it needs to finish what it started.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from vqpu_protocol.api.agent import ClaimedTask
from vqpu_protocol.rundir import RunDirError, atomic_write, parse_run_dir_name, read_json
from vqpu_protocol.wire import Document, Id, Serial

log = logging.getLogger("agent")

CLAIM_FILE = "claim.json"
Ending = Literal["reported", "fenced", "handed-back"]
TerminalState = Literal["COMPLETED", "FAILED", "CANCELLED"]


class ClaimNote(Document):
    task_id: Id
    attempt: Serial
    claim_token: Id
    device: Id
    agent_id: Id
    max_runtime_s: float | None = None  # the run's wall-time limit, as task.json has it (absent in older notes)
    ended: Ending | None = None
    state: TerminalState | None = None  # with ended "reported": the terminal state the control plane took


@dataclass(frozen=True)
class Claim:
    task_id: str
    attempt: int
    claim_token: str
    device: str
    agent_id: str
    max_runtime_s: float | None = None

    @classmethod
    def of(cls, claimed: ClaimedTask, agent_id: str, max_runtime_s: float | None = None) -> Claim:
        return cls(claimed.task.id, claimed.attempt, claimed.claim_token, claimed.task.device, agent_id, max_runtime_s)

    def save(self, run_dir: Path, ended: Ending | None = None, state: str | None = None) -> None:
        note = ClaimNote.model_validate({**asdict(self), "ended": ended, "state": state})
        # 0600 from its creation (atomic_write): the claim token lets its holder report for the task
        atomic_write(run_dir / CLAIM_FILE, note.model_dump_json().encode())


def read_note(run_dir: Path) -> ClaimNote | None:
    """The run directory's claim note, or None when it has none or it cannot be read (never through a link)."""
    try:
        return ClaimNote.model_validate(read_json(run_dir / CLAIM_FILE))
    except (RunDirError, ValidationError, json.JSONDecodeError, OSError):
        return None


def agent_notes(run_root: Path, agent_id: str) -> list[tuple[ClaimNote, Path]]:
    """This agent's claim notes, ended or not. Only real directories named TASK-ID.ATTEMPT count, and only
    when their note names that same task and attempt."""
    found: list[tuple[ClaimNote, Path]] = []
    try:
        entries = sorted(os.scandir(run_root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        named = parse_run_dir_name(entry.name)
        if named is None or not entry.is_dir(follow_symlinks=False):
            continue
        run_dir = run_root / entry.name
        note = read_note(run_dir)
        if note is None or note.agent_id != agent_id:
            continue
        if (note.task_id, note.attempt) != named:
            log.warning("%s: its claim note is for task %s attempt %s: ignored", run_dir, note.task_id, note.attempt)
            continue
        found.append((note, run_dir))
    return found


def claim_of(note: ClaimNote) -> Claim:
    return Claim(**note.model_dump(exclude={"ended", "state"}))


def open_claims(run_root: Path, agent_id: str) -> list[tuple[Claim, Path]]:
    """This agent's claims whose ending was never recorded (it stopped or died before reporting)."""
    return [(claim_of(note), run_dir) for note, run_dir in agent_notes(run_root, agent_id) if note.ended is None]
