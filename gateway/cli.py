"""The `fieldgw` command line (CONTRACT.md §1). Exit codes: 0 ok, 1 runtime failure, 2 usage/config."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gateway.cli_audit import audit_app
from gateway.cli_users import users_app
from gateway.kit import KitError, LoadedKit, load_kit

app = typer.Typer(add_completion=False, no_args_is_help=True, help="fieldgw: field communications and edge integration gateway")
kit_app = typer.Typer(no_args_is_help=True, help="Kit manifests")
app.add_typer(kit_app, name="kit")
config_app = typer.Typer(no_args_is_help=True, help="Device configuration profiles (firmware_configs/): audit and apply")
app.add_typer(config_app, name="config")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
ConfigTimeout = Annotated[float, typer.Option("--timeout", help="seconds to wait for each device to come online")]

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="where everything is persisted (default ./var/<kit>)")]
HttpPort = Annotated[int, typer.Option("--http-port", help="HTTP API and console port")]
HttpHost = Annotated[str, typer.Option("--http-host", help="address the HTTP API listens on (0.0.0.0 for the command centre's browsers)")]
MqttUrl = Annotated[Optional[str], typer.Option("--mqtt", help="external broker mqtt://[user:pass@]host:port or mqtts://…")]
MqttPort = Annotated[int, typer.Option("--mqtt-port", help="port of the embedded broker")]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")]


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _load_or_exit(path: Path) -> LoadedKit:
    try:
        return load_kit(path)
    except KitError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(2) from None


@kit_app.command("check")
def kit_check(kit: Path) -> None:
    """Validate a kit manifest: exit 0, or exit 2 with one FILE:LINE: message per problem."""
    loaded = _load_or_exit(kit)
    typer.echo(f"{kit}: ok ({len(loaded.kit.devices)} devices)")


def _config(kit: Path, device: Optional[str], apply: bool, timeout: float, log_level: str) -> None:
    _setup_logging(log_level)
    loaded = _load_or_exit(kit)
    from gateway.config_tool import run_config

    raise typer.Exit(asyncio.run(run_config(loaded, device, apply, timeout, typer.echo)))


@config_app.command("audit")
def config_audit(kit: Path, device: Annotated[Optional[str], typer.Argument()] = None, timeout: ConfigTimeout = 20.0,
                 log_level: LogLevel = "warning") -> None:
    """Read each profiled device's settings back; print what differs (exit 1 if anything does)."""
    _config(kit, device, False, timeout, log_level)


@config_app.command("apply")
def config_apply(kit: Path, device: Annotated[Optional[str], typer.Argument()] = None, timeout: ConfigTimeout = 20.0,
                 log_level: LogLevel = "warning") -> None:
    """Push each profiled device's settings where its protocol allows, then read them back."""
    _config(kit, device, True, timeout, log_level)


@app.command("mqtt-acl")
def mqtt_acl(kit: Path, out: Annotated[Path, typer.Option("--out", help="directory for acl, passwd, mqtt-passwords.json")]) -> None:
    """Write a Mosquitto password file and ACL for the kit: only its operators may publish commands and dispatch."""
    loaded = _load_or_exit(kit)
    from gateway.mqtt_acl import write_broker_files

    paths = write_broker_files(loaded.kit, out)
    typer.echo(f"wrote {paths['acl']}, {paths['passwd']} and {paths['mqtt-passwords.json']} (keep that one secret)\n"
               f"add to mosquitto.conf (per_listener_settings false): include the lines of {paths['mosquitto-acl.conf']}")


@app.command()
def run(
    kit: Path,
    data_dir: DataDir = None,
    http_port: HttpPort = 8080,
    mqtt: MqttUrl = None,
    mqtt_port: MqttPort = 1883,
    http_host: HttpHost = "127.0.0.1",
    log_level: LogLevel = "info",
) -> None:
    """Run the gateway for one field kit (real devices)."""
    _setup_logging(log_level)
    loaded = _load_or_exit(kit)
    from gateway.app import GatewayOptions
    from gateway.runner import run_gateway

    opts = GatewayOptions(data_dir=data_dir or Path("var") / loaded.kit.kit, http_port=http_port, http_host=http_host,
                          mqtt_url=mqtt, mqtt_port=mqtt_port)
    raise typer.Exit(asyncio.run(run_gateway(loaded, opts)))


@app.command()
def demo(
    data_dir: DataDir = None,
    http_port: HttpPort = 8080,
    mqtt_port: MqttPort = 1883,
    mqtt: MqttUrl = None,
    gcs: Annotated[str, typer.Option("--gcs", help="ground station the demo drones are routed to")] = "udp://127.0.0.1:14550",
    log_level: LogLevel = "info",
) -> None:
    """Run field_kits/demo.yaml: the gateway plus every simulator, each its own process."""
    _setup_logging(log_level)
    from gateway.demo import DEMO_KIT, prepare_device_dir, run_demo

    prepare_device_dir(data_dir or Path("var") / "demo")
    loaded = _load_or_exit(DEMO_KIT)
    raise typer.Exit(asyncio.run(run_demo(loaded, data_dir, http_port, mqtt_port, mqtt, gcs)))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def sim(ctx: typer.Context, kind: str) -> None:
    """Run one simulator by itself: `fieldgw sim uav --help`."""
    from gateway.demo import SIMULATORS

    module = SIMULATORS.get(kind)
    if module is None:
        typer.echo(f"unknown simulator {kind!r}; known: {', '.join(sorted(SIMULATORS))}", err=True)
        raise typer.Exit(2)
    import importlib

    raise typer.Exit(importlib.import_module(module).main(list(ctx.args)))


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app()


if __name__ == "__main__":
    main()
