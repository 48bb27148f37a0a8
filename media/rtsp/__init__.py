"""A native asyncio RTSP client for ingest: sees the RTP marker bit, so each access unit
goes to the relay the moment its last packet arrives (PyAV's RTSP demuxer holds it
until the next one starts: one frame interval). See ingest.py for the pipeline."""

from media.rtsp.ingest import RtspIngest, wants_native

__all__ = ["RtspIngest", "wants_native"]
