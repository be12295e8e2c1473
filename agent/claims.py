"""The agent's own note in a run directory: which claim it holds (`claim.json`, readable by the agent's
user only, never read by the runner), and, once nothing more will be reported, how that ended.

The agent keeps no other durable state: after a restart these notes, the run directories' outcomes,
the scheduler and the control plane's heartbeat reply are all it needs to finish what it started.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from vqpu_protocol.api.agent import ClaimedTask
from vqpu_protocol.rundir import RunDirError, atomic_write, read_json
from vqpu_protocol.wire import Document, Id, Serial

CLAIM_FILE = "claim.json"
Ending = Literal["reported", "fenced", "handed-back"]


class ClaimNote(Document):
    task_id: Id
    attempt: Serial
    claim_token: Id
    device: Id
    agent_id: Id
    ended: Ending | None = None


@dataclass(frozen=True)
class Claim:
    task_id: str
    attempt: int
    claim_token: str
    device: str
    agent_id: str

    @classmethod
    def of(cls, claimed: ClaimedTask, agent_id: str) -> Claim:
        return cls(claimed.task.id, claimed.attempt, claimed.claim_token, claimed.task.device, agent_id)

    def save(self, run_dir: Path, ended: Ending | None = None) -> None:
        note = ClaimNote(**asdict(self), ended=ended)
        path = run_dir / CLAIM_FILE
        atomic_write(path, note.model_dump_json().encode())
        os.chmod(path, 0o600)  # the claim token lets its holder report for the task


def open_claims(run_root: Path, agent_id: str) -> list[tuple[Claim, Path]]:
    """This agent's claims whose ending was never recorded (it stopped or died before reporting)."""
    found: list[tuple[Claim, Path]] = []
    if not run_root.is_dir():
        return found
    for run_dir in sorted(p for p in run_root.iterdir() if p.is_dir()):
        try:
            note = ClaimNote.model_validate(read_json(run_dir / CLAIM_FILE))
        except (RunDirError, ValidationError, json.JSONDecodeError, OSError):
            continue
        if note.agent_id == agent_id and note.ended is None:
            fields = note.model_dump(exclude={"ended"})
            found.append((Claim(**fields), run_dir))
    return found
