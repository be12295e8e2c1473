"""The REST API (FastAPI): translates requests into service calls and errors into one wire shape."""
