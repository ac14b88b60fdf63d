"""Read an ONNX file without the onnx package: a few dozen lines of the protobuf wire format. What is read: the
initializers (float and integer tensors), the nodes (name, type, inputs, outputs and attributes) and the names of the
graph's inputs and outputs; anything else in the file is skipped. Nothing in the file is executed here
(`stemdesk.transcribe.network` runs a graph's few operators in torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ModelError

# TensorProto.DataType values this reader accepts.
_DTYPES = {1: np.float32, 6: np.int32, 7: np.int64, 11: np.float64}


@dataclass
class Node:
    name: str
    op_type: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: dict[str, int | float | bytes | list[int] | list[float]] = field(default_factory=dict)


@dataclass
class OnnxGraph:
    initializers: dict[str, np.ndarray]
    nodes: list[Node]
    inputs: list[str] = field(default_factory=list)  # the graph's inputs that are not initializers
    outputs: list[str] = field(default_factory=list)


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ModelError("The ONNX file ends in the middle of a number; it is truncated.")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ModelError("The ONNX file holds a malformed number; it is damaged.")


def _fields(data: memoryview):
    """(field number, wire type, value): value is an int (varint), a memoryview (length-delimited) or bytes."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | memoryview | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise ModelError("The ONNX file ends inside a record; it is truncated.")
            value, pos = data[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = bytes(data[pos : pos + 8]), pos + 8
        elif wire == 5:
            value, pos = bytes(data[pos : pos + 4]), pos + 4
        else:
            raise ModelError(f"The ONNX file has an unknown record type {wire}; it is damaged or not ONNX.")
        yield number, wire, value


def _signed(value: int) -> int:
    """A varint read as a signed 64-bit number (protobuf writes −1 as 2⁶⁴ − 1)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _varints(value: int | memoryview | bytes) -> list[int]:
    """A repeated integer field's values: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        number, pos = _varint(memoryview(value), pos)
        out.append(_signed(number))
    return out


def _tensor(data: memoryview) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype, name, raw, floats = 1, "", None, None
    integers: list[int] = []
    for number, wire, value in _fields(data):
        if number == 1:
            if wire == 2:  # packed dims
                pos = 0
                while pos < len(value):
                    dim, pos = _varint(value, pos)
                    dims.append(dim)
            else:
                dims.append(value)
        elif number == 2:
            dtype = value
        elif number == 8:
            name = bytes(value).decode("utf-8")
        elif number == 9:
            raw = value
        elif number == 4 and wire == 2:
            floats = value
        elif number in (5, 7):  # int32_data, int64_data
            integers += _varints(value)
        elif number == 14 and value == 1:
            raise ModelError(f"ONNX tensor {name!r} keeps its data in another file; only single-file models are read.")
    if dtype not in _DTYPES:
        raise ModelError(f"ONNX tensor {name!r} has data type {dtype}, which this reader does not take.")
    payload = raw if raw is not None else floats
    if payload is not None:
        array = np.frombuffer(payload, dtype=_DTYPES[dtype])
    else:
        array = np.array(integers, dtype=_DTYPES[dtype])
    count = int(np.prod(dims)) if dims else 1
    if array.size != count:
        raise ModelError(f"ONNX tensor {name!r} holds {array.size} values for shape {dims}; the file is damaged.")
    return name, array.reshape(dims).copy()


def _node(data: memoryview) -> Node:
    node = Node("", "")
    for number, _, value in _fields(data):
        if number == 1:
            node.inputs.append(bytes(value).decode("utf-8"))
        elif number == 3:
            node.name = bytes(value).decode("utf-8")
        elif number == 2:
            node.outputs.append(bytes(value).decode("utf-8"))
        elif number == 4:
            node.op_type = bytes(value).decode("utf-8")
        elif number == 5 and isinstance(value, memoryview):
            name, attribute = _attribute(value)
            node.attributes[name] = attribute
    return node


def _attribute(data: memoryview) -> tuple[str, int | float | bytes | list[int] | list[float]]:
    """An attribute's name and value: an int, a float, bytes, or a list of ints or floats."""
    name = ""
    value_: int | float | bytes | list[int] | list[float] = []
    floats: list[float] = []
    ints: list[int] = []
    for number, _, value in _fields(data):
        if number == 1:
            name = bytes(value).decode("utf-8")
        elif number == 2 and isinstance(value, bytes):
            value_ = float(np.frombuffer(value, "<f4")[0])
        elif number == 3 and isinstance(value, int):
            value_ = _signed(value)
        elif number == 4:
            value_ = bytes(value)
        elif number == 7:
            floats += np.frombuffer(bytes(value), "<f4").tolist()
        elif number == 8:
            ints += _varints(value)
    return name, ints or floats or value_


def _name(data: memoryview) -> str:
    """A ValueInfoProto's name."""
    for number, _, value in _fields(data):
        if number == 1:
            return bytes(value).decode("utf-8")
    return ""


def read_onnx(data: bytes) -> OnnxGraph:
    """An ONNX model's bytes → its initializers (by name) and its nodes, in order."""
    view = memoryview(data)
    graph = None
    for number, wire, value in _fields(view):
        if number == 7 and wire == 2:
            graph = value
    if graph is None:
        raise ModelError("The file holds no ONNX graph; it is not an ONNX model.")
    initializers: dict[str, np.ndarray] = {}
    nodes: list[Node] = []
    inputs: list[str] = []
    outputs: list[str] = []
    for number, wire, value in _fields(graph):
        if number == 1 and wire == 2:
            nodes.append(_node(value))
        elif number == 5 and wire == 2:
            name, array = _tensor(value)
            initializers[name] = array
        elif number == 11 and wire == 2:
            inputs.append(_name(value))
        elif number == 12 and wire == 2:
            outputs.append(_name(value))
    return OnnxGraph(initializers, nodes, [i for i in inputs if i not in initializers], outputs)
