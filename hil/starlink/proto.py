"""The dish's message types, built at run time (no .proto file, no protoc step).

One file, ``spacex/api/device/device.proto`` in package ``SpaceX.API.Device``,
registered in a private descriptor pool; the reflection service answers from
that pool, so a client learns the types by name as it would from a real dish.
The field numbers are this simulator's own (the real ones are not public, and
change with firmware); ``get_status = 1004`` and ``dish_get_status = 2004`` are
the ones open-source clients are known to send. Clients must go by names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha import reflection_pb2

PACKAGE = "SpaceX.API.Device"
FILE_NAME = "spacex/api/device/device.proto"
SERVICE = f"{PACKAGE}.Device"
METHOD = "Handle"

F = descriptor_pb2.FieldDescriptorProto
# (name, number, type, message type name or "") for each message, in file order.
MESSAGES: dict[str, list[tuple[str, int, int, str]]] = {
    "GetStatusRequest": [],
    "DeviceInfo": [("id", 1, F.TYPE_STRING, ""), ("hardware_version", 2, F.TYPE_STRING, ""),
                   ("software_version", 3, F.TYPE_STRING, "")],
    "DeviceState": [("uptime_s", 1, F.TYPE_UINT64, "")],
    "DishObstructionStats": [("fraction_obstructed", 1, F.TYPE_FLOAT, ""),
                             ("currently_obstructed", 5, F.TYPE_BOOL, "")],
    "DishAlerts": [("motors_stuck", 1, F.TYPE_BOOL, ""), ("thermal_throttle", 3, F.TYPE_BOOL, ""),
                   ("thermal_shutdown", 2, F.TYPE_BOOL, ""), ("mast_not_near_vertical", 4, F.TYPE_BOOL, ""),
                   ("unexpected_location", 5, F.TYPE_BOOL, ""), ("slow_ethernet_speeds", 6, F.TYPE_BOOL, "")],
    "DishGpsStats": [("gps_valid", 1, F.TYPE_BOOL, ""), ("gps_sats", 2, F.TYPE_UINT32, "")],
    "DishGetStatusResponse": [
        ("device_info", 1, F.TYPE_MESSAGE, "DeviceInfo"),
        ("device_state", 2, F.TYPE_MESSAGE, "DeviceState"),
        ("pop_ping_drop_rate", 1003, F.TYPE_FLOAT, ""),
        ("obstruction_stats", 1004, F.TYPE_MESSAGE, "DishObstructionStats"),
        ("alerts", 1005, F.TYPE_MESSAGE, "DishAlerts"),
        ("downlink_throughput_bps", 1007, F.TYPE_FLOAT, ""),
        ("uplink_throughput_bps", 1008, F.TYPE_FLOAT, ""),
        ("pop_ping_latency_ms", 1009, F.TYPE_FLOAT, ""),
        ("boresight_azimuth_deg", 1011, F.TYPE_FLOAT, ""),
        ("boresight_elevation_deg", 1012, F.TYPE_FLOAT, ""),
        ("gps_stats", 1015, F.TYPE_MESSAGE, "DishGpsStats"),
    ],
    # Request and Response carry a oneof, as the real ones do (only get_status here).
    "Request": [("id", 1, F.TYPE_UINT64, ""), ("get_status", 1004, F.TYPE_MESSAGE, "GetStatusRequest")],
    "Response": [("id", 1, F.TYPE_UINT64, ""), ("dish_get_status", 2004, F.TYPE_MESSAGE, "DishGetStatusResponse")],
}
ONEOFS = {"Request": ("request", {"get_status"}), "Response": ("response", {"dish_get_status"})}


def file_proto() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name=FILE_NAME, package=PACKAGE, syntax="proto3")
    for name, fields in MESSAGES.items():
        msg = fd.message_type.add(name=name)
        oneof_name, members = ONEOFS.get(name, ("", set()))
        if oneof_name:
            msg.oneof_decl.add(name=oneof_name)
        for fname, number, ftype, type_name in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = f".{PACKAGE}.{type_name}"
            if fname in members:
                field.oneof_index = 0
    service = fd.service.add(name="Device")
    service.method.add(name=METHOD, input_type=f".{PACKAGE}.Request", output_type=f".{PACKAGE}.Response")
    return fd


@dataclass(frozen=True)
class Api:
    pool: descriptor_pool.DescriptorPool
    Request: Any
    Response: Any
    DishGetStatusResponse: Any


def build() -> Api:
    """A fresh pool holding the dish's file (and the reflection service's, so that
    a client listing services can resolve both), and the message classes."""
    pool = descriptor_pool.DescriptorPool()
    reflection_file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(reflection_file)
    pool.Add(reflection_file)
    pool.Add(file_proto())

    def cls(name: str) -> Any:
        return GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))

    return Api(pool=pool, Request=cls("Request"), Response=cls("Response"),
               DishGetStatusResponse=cls("DishGetStatusResponse"))
