"""Broker-side access control for a kit: a Mosquitto password file and ACL file made from the kit.

`fieldgw mqtt-acl KIT.yaml --out DIR` writes:

- `DIR/acl`: the gateway's user may read and write the kit's whole tree
  (`fieldgw/v1/{kit}/#`); every `mqtt_clients` user may read it; only
  `operator` and `admin` users may write `devices/+/commands` and `dispatch`.
  Nobody else may publish there, so a viewer's or a stranger's command never
  reaches the gateway at all (Mosquitto drops a denied publish silently).
- `DIR/passwd`: Mosquitto 2's own format (`user:$7$iterations$salt$hash`,
  PBKDF2-HMAC-SHA512), one line per user.
- `DIR/mqtt-passwords.json` (0600): the passwords, generated once per user and
  kept on later runs, so re-running after adding a user changes nobody else's.
- `DIR/mosquitto-acl.conf`: the lines to include in the broker's configuration.

The gateway's user is the one in the kit's broker URL, or `fieldgw-{kit}`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gateway.kit import Kit
from gateway.users import RANK, secure_file
from gateway.wire import Topics

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes by default ($7$101$...)


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def gateway_user(kit: Kit) -> str:
    if kit.broker is not None:
        name = urlsplit(kit.broker.url).username
        if name:
            return unquote(name)
    return f"fieldgw-{kit.kit}"


def render_acl(kit: Kit) -> str:
    topics = Topics(kit.kit)
    lines = [f"# fieldgw kit {kit.kit}: made by `fieldgw mqtt-acl`; edit the kit, not this file", "",
             f"user {gateway_user(kit)}", f"topic readwrite {topics.root}/#", ""]
    for client in kit.mqtt_clients:
        lines += [f"user {client.user}", f"topic read {topics.root}/#"]
        if RANK[client.role] >= RANK["operator"]:
            lines += [f"topic write {topics.commands_filter}", f"topic write {topics.dispatch}"]
        lines.append("")
    return "\n".join(lines)


def write_broker_files(kit: Kit, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("acl", "passwd", "mqtt-passwords.json", "mosquitto-acl.conf")}
    known: dict[str, str] = {}
    if paths["mqtt-passwords.json"].exists():
        known = json.loads(paths["mqtt-passwords.json"].read_text())
    users = [gateway_user(kit)] + [c.user for c in kit.mqtt_clients]
    passwords = {u: known.get(u) or secrets.token_urlsafe(18) for u in users}
    paths["acl"].write_text(render_acl(kit))
    secure_file(paths["passwd"], "".join(f"{u}:{mosquitto_hash(pw)}\n" for u, pw in passwords.items()))
    secure_file(paths["mqtt-passwords.json"], json.dumps(passwords, indent=2))
    paths["mosquitto-acl.conf"].write_text(f"allow_anonymous false\npassword_file {paths['passwd'].resolve()}\n"
                                           f"acl_file {paths['acl'].resolve()}\n")
    return paths
