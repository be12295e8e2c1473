"""The transpiler plugins a runner process may load: Qiskit's own, none of what else is installed.

Qiskit finds transpiler plugins (synthesis methods, pass-manager stages) through entry points, and
stevedore imports every module registered in a group as soon as a pass manager asks for the group:
building a `HighLevelSynthesis` pass imports each `qiskit.synthesis` plugin of every installed
package. Installed beside the runner (a user's or a developer's environment), qiskit-experiments
registers one, so every run that translated a gate imported qiskit-experiments, lmfit and matplotlib,
and built a matplotlib font cache in its scratch space (2.5 s of a fresh process, measured);
qiskit-ibm-runtime registers translation stages the same way. None of that is the runner's code.

`confine` fills stevedore's in-memory entry-point cache, for every Qiskit plugin group, with the entry
points whose code is Qiskit's (`qiskit.` modules) or Aer's (`qiskit_aer.`), before any pass manager is
built. It reads the installed distributions' metadata (once per process) and writes nothing.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

OWN_MODULES = ("qiskit.", "qiskit_aer.")
"""Entry points into these packages are kept; every other is left out."""


def own(entry: EntryPoint) -> bool:
    return entry.value.startswith(OWN_MODULES)


def confine() -> dict[str, list[str]]:
    """Keep the runner's process to Qiskit's and Aer's plugins; returns what was left out, by group."""
    import stevedore

    kept, left_out = _qiskit_entry_points()
    for group, entries in kept.items():
        stevedore.ExtensionManager.ENTRY_POINT_CACHE[group] = list(entries)
    return {group: list(foreign) for group, foreign in left_out.items()}


@cache
def _qiskit_entry_points() -> tuple[dict[str, tuple[EntryPoint, ...]], dict[str, tuple[str, ...]]]:
    """Every Qiskit plugin group's own entry points, and the foreign ones, by group. The installed metadata is
    read once per process (some 20 ms): a warm runner reads it before it forks, and its children inherit it."""
    kept: dict[str, tuple[EntryPoint, ...]] = {}
    left_out: dict[str, tuple[str, ...]] = {}
    everything = entry_points()
    for group in everything.groups:
        if not group.startswith("qiskit."):
            continue
        listed = list(everything.select(group=group))
        kept[group] = tuple(e for e in listed if own(e))
        foreign = sorted(f"{e.name} = {e.value}" for e in listed if not own(e))
        if foreign:
            left_out[group] = tuple(foreign)
    return kept, left_out
