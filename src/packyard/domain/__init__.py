"""The rules of the registry. No HTTP and no SQL here: storage is reached through ports.py."""
