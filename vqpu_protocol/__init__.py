"""Every document that crosses a process boundary, defined once: limits, error codes and the error
body, the run-directory documents, and the REST API's request and response models.

A leaf: it imports pydantic, the standard library and device_registry only. This module imports
nothing, so `vqpu_protocol.codes` stays usable from code that must not load pydantic.
"""
