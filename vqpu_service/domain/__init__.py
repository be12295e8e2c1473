"""The control plane's domain: lifecycle, records, events and errors. Standard library only."""
