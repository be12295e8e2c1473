"""Adapters: storage, cache, auth and event fan-out, mapped onto the domain from outside."""
