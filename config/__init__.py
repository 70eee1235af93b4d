"""Typed settings, the YAML loader and the default YAML an admin edits."""
