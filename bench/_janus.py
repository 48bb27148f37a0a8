"""Janus (Debian package) as the measured peer for bench.video_relay, all on 127.0.0.1.

A private configuration in a temp dir (/etc/janus is left alone): only the
streaming plugin and the HTTP transport, two RTP H.264 mountpoints on the same
feed (id 1 with `videobufferkf = false`, Janus's default join behaviour; id 2
with `videobufferkf = true`, its best case for joiners). Janus skips loopback
interfaces when gathering ICE candidates, so it is started with a tiny
LD_PRELOAD shim (compiled here at run time, never committed) that clears
IFF_LOOPBACK on `lo` in getifaddrs(); with `ice_enforce_list = "127.0.0.1"`
it then offers only `127.0.0.1 typ host` (see /work/shared/research/janus-peer.md).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

from bench._common import find_binary, free_port, free_udp_port, stop_process

JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>
int getifaddrs(struct ifaddrs **ifap) {
    static int (*real)(struct ifaddrs **) = 0;
    if (!real) real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
    int r = real(ifap);
    if (r == 0)
        for (struct ifaddrs *i = *ifap; i; i = i->ifa_next)
            if (i->ifa_name && strcmp(i->ifa_name, "lo") == 0) i->ifa_flags &= ~IFF_LOOPBACK;
    return r;
}
"""


def _disable(folder: str, keep: str) -> str:
    names = sorted({p.name.split(".so")[0] + ".so" for p in (JANUS_LIB / folder).glob("*.so*")})
    return ",".join(n for n in names if n != keep)


def available() -> str | None:
    """None if Janus can be run here, else why not."""
    if find_binary("janus") is None:
        return "janus is not installed (apt-get install -y janus)"
    if find_binary("gcc") is None and find_binary("cc") is None:
        return "no C compiler for the getifaddrs LD_PRELOAD shim"
    return None


class Janus:
    def __init__(self, workdir: Path, cpu: str | None = "0") -> None:
        self.dir = workdir / "janus"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.rtp_ports = {1: free_udp_port(), 2: free_udp_port()}
        shim = self.dir / "lo_not_loopback.so"
        (self.dir / "shim.c").write_text(SHIM_C)
        subprocess.run([find_binary("gcc") or "cc", "-shared", "-fPIC", "-O2", "-o", str(shim),
                        str(self.dir / "shim.c"), "-ldl"], check=True)
        self._write_config()
        env = dict(os.environ, LD_PRELOAD=str(shim))
        args = ["janus", "-F", str(self.dir), "-C", str(self.dir / "janus.jcfg"), "-o", "-d", "3"]
        if cpu is not None:
            args = ["taskset", "-c", cpu, *args]
        self.log = (self.dir / "janus.log").open("wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.base = f"http://127.0.0.1:{self.http_port}/janus"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited {self.proc.returncode}: {(self.dir / 'janus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base + "/info", timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError("janus did not answer /janus/info")

    def _write_config(self) -> None:
        d = self.dir
        (d / "janus.jcfg").write_text(f"""general: {{
    configs_folder = "{d}"
    plugins_folder = "{JANUS_LIB}/plugins"
    transports_folder = "{JANUS_LIB}/transports"
    events_folder = "{JANUS_LIB}/events"
    loggers_folder = "{JANUS_LIB}/loggers"
    debug_level = 3
    interface = "127.0.0.1"
    server_name = "bench-janus"
}}
certificates: {{
}}
media: {{
}}
nat: {{
    nice_debug = false
    ignore_mdns = true
    ice_enforce_list = "127.0.0.1"
}}
plugins: {{
    disable = "{_disable('plugins', 'libjanus_streaming.so')}"
}}
transports: {{
    disable = "{_disable('transports', 'libjanus_http.so')}"
}}
loggers: {{
    disable = "{_disable('loggers', '')}"
}}
events: {{
    broadcast = false
    disable = "{_disable('events', '')}"
}}
""")
        (d / "janus.transport.http.jcfg").write_text(f"""general: {{
    json = "indented"
    base_path = "/janus"
    http = true
    port = {self.http_port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_base_path = "/admin"
    admin_http = false
    admin_https = false
}}
""")
        mounts = []
        for mid, kf in ((1, "false"), (2, "true")):
            mounts.append(f"""bench-{mid}: {{
    type = "rtp"
    id = {mid}
    description = "bench {mid}"
    audio = false
    video = true
    videoport = {self.rtp_ports[mid]}
    videoiface = "127.0.0.1"
    videopt = 96
    videocodec = "h264"
    videofmtp = "profile-level-id=42e01f;packetization-mode=1"
    videobufferkf = {kf}
}}""")
        (d / "janus.plugin.streaming.jcfg").write_text("general: {\n}\n" + "\n".join(mounts) + "\n")

    def feed_args(self, rtsp_url: str) -> list[str]:
        """One ffmpeg remuxing the camera's RTSP (no re-encode) to both mountpoints as RTP."""
        out: list[str] = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", rtsp_url]
        for port in self.rtp_ports.values():
            out += ["-map", "0:v", "-c", "copy", "-an", "-payload_type", "96", "-f", "rtp",
                    f"rtp://127.0.0.1:{port}?pkt_size=1200"]
        return out

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()
