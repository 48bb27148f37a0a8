"""TETRA radio on PEI (EN 300 392-5): SDS text, LIP positions, signal and registration."""
