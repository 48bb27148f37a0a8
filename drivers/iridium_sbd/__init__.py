"""Iridium 9602/9603 SBD modem on serial AT: texts out as MO messages, position batches and texts in as MT."""
