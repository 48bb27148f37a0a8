"""ThingsBoard IoT Gateway as a benchmark peer: its own venv, its config, its process.

`ensure_venv()` creates `var/bench/tb-venv` (never the project's .venv: the
gateway pins pymodbus 3.9.2 and installs it at start-up if it finds another
version) with `thingsboard-gateway` and the exact pymodbus it wants, so that
it installs nothing while it is measured. `TbGateway` writes a config
directory (tb_gateway.json with only the Modbus connector, memory storage,
statistics and remote configuration off, every logger at WARNING like
fieldgw's `--log-level warning`, pymodbus's at ERROR) and runs `thingsboard_gateway.tb_gateway`
with `TB_GW_CONFIG_DIR` pointing at it. Its "ThingsBoard" is an MQTT broker
on 127.0.0.1 (a throwaway Mosquitto): the gateway publishes its telemetry
there as it would to ThingsBoard (`v1/gateway/telemetry`).

Setup by hand (what `ensure_venv` does):

    python3.11 -m venv var/bench/tb-venv
    var/bench/tb-venv/bin/pip install thingsboard-gateway==3.8.5 pymodbus==3.9.2 pyserial pyserial-asyncio
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.procs import ROOT, stop_process

VENV = ROOT / "var" / "bench" / "tb-venv"
TB_VERSION = "3.8.5"
PACKAGES = [f"thingsboard-gateway=={TB_VERSION}", "pymodbus==3.9.2", "pyserial", "pyserial-asyncio"]
LOGGERS = ("database", "service", "connector", "converter", "tb_connection", "storage", "extension")
# the EPEVER register map (firmware_configs/modbus/epever_tracer.yaml) as ThingsBoard keys: one key per value,
# the two fields of 0x3201 as one raw key (ThingsBoard reads a key with one request; two keys would read it twice)
TYPES = {"uint16": "16uint", "int16": "16int", "uint32": "32uint", "int32": "32int"}


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(say: Any = print) -> str:
    """The venv's ThingsBoard gateway version, creating or completing the venv first."""
    probe = [str(python()), "-c", "import importlib.metadata as m; print(m.version('thingsboard-gateway'), "
                                  "m.version('pymodbus'))"]
    if python().exists():
        out = subprocess.run(probe, capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.split() == [TB_VERSION, "3.9.2"]:
            return TB_VERSION
    say(f"setting up {VENV.relative_to(ROOT)} (thingsboard-gateway {TB_VERSION}, from PyPI) ...")
    if not python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python()), "-m", "pip", "install", "-q", *PACKAGES], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return TB_VERSION


def timeseries(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """The polled registers of a register map as ThingsBoard Modbus keys (one request each)."""
    keys: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for reg in profile["registers"]:
        function = int(reg.get("function", profile.get("function", 3)))
        if not reg.get("poll", True) or (function, reg["address"]) in seen:
            continue
        seen.add((function, reg["address"]))
        size = 2 if reg["type"].endswith("32") else 1
        key: dict[str, Any] = {"tag": reg["name"] if "bits" not in reg else f"status_0x{reg['address']:04X}",
                               "type": TYPES[reg["type"]], "functionCode": function, "objectsCount": size,
                               "address": reg["address"]}
        scale = float(reg.get("scale", 1))
        if scale != 1 and "bits" not in reg:
            key["divider"] = round(1 / scale)
        keys.append(key)
    return keys


def write_config(workdir: Path, mqtt_port: int, modbus_port: int, units: list[int], poll_s: float,
                 profile: dict[str, Any], report_s: float | None = None) -> Path:
    conf = workdir / "config"
    conf.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    gateway = {
        "thingsboard": {"host": "127.0.0.1", "port": mqtt_port, "remoteShell": False, "remoteConfiguration": False,
                        "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600},
                        "security": {"type": "accessToken", "accessToken": "bench"}, "qos": 1,
                        "checkConnectorsConfigurationInSeconds": 3600,
                        # every value as polled, or (report_s) the newest value of each key once per period
                        "reportStrategy": ({"type": "ON_REPORT_PERIOD", "reportPeriod": int(report_s * 1000)}
                                           if report_s else {"type": "ON_RECEIVED"})},
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 100000},
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }
    wo = {"low_first": "LITTLE", "high_first": "BIG"}
    orders = {r.get("word_order") for r in profile["registers"] if r.get("word_order")}
    slaves = [{"host": "127.0.0.1", "port": modbus_port, "type": "tcp", "method": "socket", "unitId": unit,
               "deviceName": f"unit-{unit}", "deviceType": "power", "timeout": 1, "byteOrder": "BIG",
               "wordOrder": wo[orders.pop()] if len(orders) == 1 else "BIG", "retries": 0,
               "retryOnEmpty": False, "retryOnInvalid": False, "pollPeriod": int(poll_s * 1000),
               "connectAttemptTimeMs": 500, "connectAttemptCount": 5, "waitAfterFailedAttemptsMs": 1000,
               "attributes": [], "timeseries": timeseries(profile), "attributeUpdates": [], "rpc": []}
              for unit in units]
    logs = {"version": 1, "disable_existing_loggers": False,
            "formatters": {"f": {"class": "logging.Formatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "f", "level": "WARNING",
                                     "stream": "ext://sys.stderr"}},
            "loggers": {**{name: {"handlers": ["console"], "level": "WARNING", "propagate": False} for name in LOGGERS},
                        # pymodbus 3.9 warns that the connector's BinaryPayloadDecoder is deprecated, on every
                        # value it decodes: that logging would be most of the gateway's CPU, so it is silenced
                        "pymodbus": {"handlers": ["console"], "level": "ERROR", "propagate": False}},
            "root": {"level": "WARNING", "handlers": ["console"]}}
    (conf / "tb_gateway.json").write_text(json.dumps(gateway, indent=1))
    (conf / "modbus.json").write_text(json.dumps({"master": {"slaves": slaves}}, indent=1))
    (conf / "logs.json").write_text(json.dumps(logs, indent=1))
    return conf


class TbGateway:
    """`thingsboard_gateway.tb_gateway` polling `units` on the Modbus TCP server, publishing to the broker."""

    def __init__(self, workdir: Path, mqtt_port: int, modbus_port: int, units: list[int], poll_s: float,
                 profile: dict[str, Any], report_s: float | None = None) -> None:
        conf = write_config(workdir, mqtt_port, modbus_port, units, poll_s, profile, report_s)
        self.log = workdir / "tb-gateway.log"
        self._log = self.log.open("wb")
        env = {**os.environ, "TB_GW_CONFIG_DIR": str(conf) + os.sep}
        self.proc = subprocess.Popen([str(python()), "-m", "thingsboard_gateway.tb_gateway"], cwd=workdir, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        rc = stop_process(self.proc)
        self._log.close()
        return rc
