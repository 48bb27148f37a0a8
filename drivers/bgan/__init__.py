"""Inmarsat BGAN terminal: AT status, registration and PDP context as a satcom device."""
