"""Example scenario files for ``python -m hil.link --scenario FILE`` (shipped as package data)."""
