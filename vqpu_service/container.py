"""What the composition root wires together for one server process."""

from __future__ import annotations

from dataclasses import dataclass

from vqpu_service.adapters.auth import KeyRing
from vqpu_service.adapters.broker import Broker
from vqpu_service.config import Settings
from vqpu_service.ports import Store
from vqpu_service.services.agents import AgentService, WorkSignal
from vqpu_service.services.devices import DeviceService
from vqpu_service.services.events import EventService
from vqpu_service.services.queue_check import QueueInspector
from vqpu_service.services.tasks import TaskService
from vqpu_service.services.usage import UsageService
from vqpu_service.services.verdicts import Verdicts


@dataclass
class Container:
    settings: Settings
    store: Store
    keys: KeyRing
    devices: DeviceService
    tasks: TaskService
    agents: AgentService
    work: WorkSignal
    broker: Broker
    verdicts: Verdicts
    usage: UsageService
    events: EventService
    queue: QueueInspector
    ready: bool = False
