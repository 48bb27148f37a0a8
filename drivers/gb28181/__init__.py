"""GB/T 28181-2016 platform side (SIP server): cameras and body-worn transmitters register here."""
