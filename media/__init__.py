"""Field video: ingest (PyAV), passthrough relay to WebRTC viewers (aiortc), WHEP.

media/ knows no driver: a stream is a URL and some settings, whoever made it.
"""
