"""Starlink dish: local gRPC status (learned by server reflection) as a satcom device."""
