"""ONVIF cameras: stream URI, PTZ, status, encoder settings (driver.py)."""
