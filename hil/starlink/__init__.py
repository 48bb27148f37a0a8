"""Starlink dish simulator: the dish's local gRPC status API (``python -m hil.starlink``)."""
