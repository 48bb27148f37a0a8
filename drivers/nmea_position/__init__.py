"""NMEA 0183 positions of body-worn transmitters over TCP, UDP or serial (driver.py)."""
