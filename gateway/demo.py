"""`fieldgw demo`: the demo kit on simulators, each simulator its own process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from gateway.app import Gateway, GatewayOptions
from gateway.kit import PROJECT_ROOT, LoadedKit
from gateway.runner import run_gateway
from gateway.users import ROLES, UserStore, generate_password, secure_file

log = logging.getLogger(__name__)

DEMO_KIT = PROJECT_ROOT / "field_kits" / "demo.yaml"
# simulator kind → module with main(argv) (hil/ imports nothing of the gateway)
SIMULATORS: dict[str, str] = {"uav": "hil.uav", "link": "hil.link", "camera": "hil.camera", "tetra": "hil.tetra",
                              "iridium": "hil.iridium", "beidou": "hil.beidou", "starlink": "hil.starlink", "bgan": "hil.bgan",
                              "power": "hil.power", "snmp": "hil.snmp", "gb28181": "hil.gb28181"}
SIMULATORS["nmea"] = "hil.nmea"  # a body-worn transmitter's NMEA 0183 GPS output
SIMULATORS["onvif"] = "hil.onvif"  # an ONVIF Profile S PTZ dome camera (SOAP + RTSP)
DEVICE_DIR_VARIABLE = "FIELDGW_DEMO_DEV"  # where the simulated serial devices appear (demo.yaml's ${FIELDGW_DEMO_DEV})


def prepare_device_dir(data_dir: Path) -> Path:
    """The directory for the simulators' serial links (like /dev/serial/by-id), named in the environment."""
    dev_dir = (data_dir / "dev").resolve()
    dev_dir.mkdir(parents=True, exist_ok=True)
    os.environ[DEVICE_DIR_VARIABLE] = str(dev_dir)
    return dev_dir


async def _start_simulators(loaded: LoadedKit) -> list[asyncio.subprocess.Process]:
    procs = []
    for sim in loaded.kit.simulators:
        module = SIMULATORS.get(sim.kind)
        if module is None:
            raise ValueError(f"the demo kit names an unknown simulator {sim.kind!r}")
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", module, *sim.args,
                                                    stdout=asyncio.subprocess.DEVNULL, env=dict(os.environ))
        log.info("started simulator %s (pid %d): %s", sim.kind, proc.pid, " ".join(sim.args))
        procs.append(proc)
    return procs


async def _stop_simulators(procs: list[asyncio.subprocess.Process]) -> None:
    for p in procs:
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
    # all at once, within one bound (one at a time, a dozen slow ones would blow the contract's 5 s)
    waits = [asyncio.ensure_future(p.wait()) for p in procs]
    if waits:
        await asyncio.wait(waits, timeout=2.0)
    for p in procs:
        if p.returncode is None:
            log.warning("simulator %d did not stop on SIGTERM: killed", p.pid)
            with contextlib.suppress(ProcessLookupError):
                p.kill()
    await asyncio.gather(*waits)


DEMO_TOKEN_TTL_S = 7 * 86400


def demo_credentials(data_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """One user per role (named after it) with a fresh random password, and a token each, written to
    DATA_DIR/demo-credentials.json (tokens, as the contract says) and demo-passwords.json (both 0600).
    The only place fieldgw makes users by itself: a real kit starts with none."""
    store = UserStore(data_dir)
    try:
        tokens, passwords = {}, {}
        for role in ROLES:
            passwords[role] = generate_password()
            if any(u.name == role for u in store.list()):
                store.remove(role)  # the old demo tokens die with it
            store.add(role, role, passwords[role])
            tokens[role] = store.issue(role, DEMO_TOKEN_TTL_S)[0]
    finally:
        store.close()
    secure_file(data_dir / "demo-credentials.json", json.dumps(tokens, indent=2))
    secure_file(data_dir / "demo-passwords.json", json.dumps(passwords, indent=2))
    return tokens, passwords


async def run_demo(loaded: LoadedKit, data_dir: Path | None, http_port: int, mqtt_port: int,
                   mqtt_url: str | None, gcs: str) -> int:
    data_dir = data_dir or Path("var") / loaded.kit.kit
    opts = GatewayOptions(data_dir=data_dir, http_port=http_port, mqtt_url=mqtt_url, mqtt_port=mqtt_port,
                          ground_stations=(gcs,) if gcs else ())
    tokens, passwords = demo_credentials(data_dir)
    procs = await _start_simulators(loaded)

    async def started(gw: Gateway) -> None:
        info = {
            "console": f"http://127.0.0.1:{gw.http_port}/",
            "health": f"http://127.0.0.1:{gw.http_port}/api/v1/health",
            "api": f"http://127.0.0.1:{gw.http_port}/api/v1/devices",
            "video": [f"http://127.0.0.1:{gw.http_port}/player.html?stream={sid}#token={tokens['viewer']}" for sid in gw.media.sources],
            "mqtt": gw.broker_url,
            "mqtt_root": gw.topics.root,
            "ground_station": gcs,
            "data_dir": str(data_dir),
            "simulators": [p.pid for p in procs],
        }
        print(f"fieldgw demo is running (Ctrl-C stops everything):\n"
              f"  console   {info['console']}  log in as operator / {passwords['operator']}"
              f" (viewer, operator, admin: {data_dir / 'demo-passwords.json'})\n"
              f"  tokens    {data_dir / 'demo-credentials.json'}\n"
              f"  health    {info['health']}\n"
              f"  devices   {info['api']}\n"
              + "".join(f"  video     {url}\n" for url in info["video"]) +
              f"  MQTT      {info['mqtt']}  try: mosquitto_sub -p {gw.uplinks.uplinks[0].link.target.port} -t '{gw.topics.root}/#' -v\n"
              f"  GCS       drones routed to {gcs} (QGroundControl listens there)\n"
              f"  data      {data_dir}\n"
              f"  sims      pids {' '.join(str(p.pid) for p in procs)}", flush=True)
        (data_dir / "demo.json").write_text(json.dumps(info, indent=2))

    try:
        return await run_gateway(loaded, opts, started)
    finally:
        await _stop_simulators(procs)
