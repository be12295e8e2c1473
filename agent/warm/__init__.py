"""The runner on a Dask worker, in a killable child, without paying its imports per run.

    client.register_plugin(WarmRunnerPlugin(mode="fork"))     # or "process": a fresh `python -m runner`
    future = client.submit(run_on_worker, run_dir, pure=False)
    client.run(kill_runner, run_dir)                            # to cancel: the future then returns killed=True

The names are loaded on first use: the zygote runs as `python -m agent.warm.zygote`, which imports this
package first, and it must not pay for (or fork with) Dask's import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.warm.plugin import (
        PLUGIN_NAME,
        Mode,
        WarmRunnerPlugin,
        ensure_lifetime_fits,
        kill_runner,
        run_on_worker,
    )

__all__ = ["PLUGIN_NAME", "Mode", "WarmRunnerPlugin", "ensure_lifetime_fits", "kill_runner", "run_on_worker"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from agent.warm import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
