"""A TTL cache for device reads (D7): entries expire after `ttl_s`; a mutation invalidates at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._items: dict[K, tuple[float, V]] = {}
        self._generation = 0  # bumped by invalidate: a load that raced an invalidation is not kept
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: K, load: Callable[[], V]) -> V:
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is not None and item[0] > now:
                self.hits += 1
                return item[1]
            self.misses += 1
            generation = self._generation
        value = load()
        with self._lock:
            if generation == self._generation:
                self._items[key] = (now + self._ttl, value)
        return value

    def invalidate(self, key: K | None = None) -> None:
        with self._lock:
            self._generation += 1
            if key is None:
                self._items.clear()
            else:
                self._items.pop(key, None)
