"""Support shared by the serial-terminal drivers: byte streams, AT dialogue, remote terminals."""
