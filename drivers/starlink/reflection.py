"""Learning a gRPC method's message types from the server itself (server reflection).

A Starlink dish publishes no .proto and renumbers fields between firmware
releases, so a client asks the dish for its own descriptors, as
starlink-grpc-tools does: `file_containing_symbol` for the service, then
`file_by_filename` for any import the answer did not carry, built into a
private DescriptorPool. Everything runs on grpc.aio (one bidirectional
stream, no thread); the v1 reflection service is tried when v1alpha is
not offered (the messages are the same on the wire).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2, empty_pb2, timestamp_pb2, wrappers_pb2
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha import reflection_pb2

REFLECTION_METHODS = ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
_WELL_KNOWN = (any_pb2, duration_pb2, empty_pb2, timestamp_pb2, wrappers_pb2)  # in the default pool, for _well_known
MAX_FILES = 500  # a real dish's device.proto imports a few dozen files; more than this is a loop


class ReflectionError(Exception):
    """The server does not describe the method (no reflection, unknown service, bad descriptors)."""


@dataclass(frozen=True)
class Method:
    path: str  # "/SpaceX.API.Device.Device/Handle"
    request: Any  # the message classes, built from the server's descriptors
    response: Any


async def learn_method(channel: grpc.aio.Channel, service: str, method: str, timeout: float) -> Method:
    """The request and response types of `service/method`, as the server describes them.

    Raises ReflectionError for a server that answers but cannot describe the
    method, grpc.RpcError when it does not answer, TimeoutError after `timeout`.
    """
    files: dict[str, descriptor_pb2.FileDescriptorProto] | None = None
    for path in REFLECTION_METHODS:
        try:
            files = await asyncio.wait_for(_fetch_files(channel, path, service), timeout)
            break
        except grpc.RpcError as exc:
            if _code(exc) != grpc.StatusCode.UNIMPLEMENTED or path == REFLECTION_METHODS[-1]:
                raise
    assert files is not None
    pool = descriptor_pool.DescriptorPool()
    try:
        for fd in _dependency_order(files):
            pool.Add(fd)
        svc = pool.FindServiceByName(service)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReflectionError(f"descriptors for {service} do not build: {exc}") from None
    m = svc.methods_by_name.get(method)
    if m is None:
        raise ReflectionError(f"{service} has no method {method} (it has {', '.join(svc.methods_by_name)})")
    return Method(f"/{service}/{method}", GetMessageClass(m.input_type), GetMessageClass(m.output_type))


async def _fetch_files(channel: grpc.aio.Channel, path: str, service: str) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    call = channel.stream_stream(path, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)()
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    try:
        _take(files, await _ask(call, reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)))
        while missing := _missing(files):
            if len(files) > MAX_FILES:
                raise ReflectionError(f"more than {MAX_FILES} descriptor files for {service}")
            name = missing[0]
            try:
                _take(files, await _ask(call, reflection_pb2.ServerReflectionRequest(file_by_filename=name)))
            except ReflectionError:
                files[name] = _well_known(name)  # servers may leave google/protobuf/*.proto to the client
            if name not in files:
                raise ReflectionError(f"the server sent no {name} when asked for it")
        await call.done_writing()
    finally:
        call.cancel()
    return files


async def _ask(call: Any, request: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
    await call.write(request)
    response = await call.read()
    if response is grpc.aio.EOF:
        raise ReflectionError("the reflection stream closed without an answer")
    if response.HasField("error_response"):
        err = response.error_response
        raise ReflectionError(f"reflection error {err.error_code}: {err.error_message}")
    if not response.HasField("file_descriptor_response"):
        raise ReflectionError("reflection answered without descriptors")
    return response


def _take(files: dict[str, descriptor_pb2.FileDescriptorProto], response: reflection_pb2.ServerReflectionResponse) -> None:
    for raw in response.file_descriptor_response.file_descriptor_proto:
        fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        files.setdefault(fd.name, fd)


def _missing(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[str]:
    return sorted({dep for fd in files.values() for dep in fd.dependency if dep not in files})


def _well_known(name: str) -> descriptor_pb2.FileDescriptorProto:
    try:
        found = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        raise ReflectionError(f"the server does not describe {name}, an import of its service") from None
    fd = descriptor_pb2.FileDescriptorProto()
    found.CopyToProto(fd)
    return fd


def _dependency_order(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[descriptor_pb2.FileDescriptorProto]:
    """Each file after the files it imports (a pool builds a file only once its imports are in)."""
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ReflectionError(f"import cycle through {name}")
        state[name] = 1
        for dep in files[name].dependency:
            visit(dep)
        state[name] = 2
        ordered.append(files[name])

    for name in sorted(files):
        visit(name)
    return ordered


def _code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(exc, "code", None)
    return code() if callable(code) else None
