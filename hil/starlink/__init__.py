"""Starlink dish simulator: the dish's local gRPC status API (``python -m hil.starlink``).

Kept import-free so that ``hil.starlink.script`` can be used without loading grpc.
"""
