"""Prefect flows: the agent-side per-task flow (`vqpu-execute`); user-side flows arrive with the client."""
