"""The control plane: devices, the task lifecycle, claim-time snapshot binding, the event stream."""

__version__ = "0.1.0"
