"""Inmarsat BGAN terminal simulator: an AT responder on a pty (and TCP) with scripted
link states (``python -m hil.bgan``)."""
