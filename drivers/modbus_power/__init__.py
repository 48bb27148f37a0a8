"""Modbus power driver: charge controllers and GX devices over Modbus RTU/TCP, register maps as data."""
