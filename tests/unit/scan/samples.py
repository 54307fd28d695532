"""Malicious and odd pickles built from bytes. Nothing here is ever loaded."""

from __future__ import annotations

import pickle
import struct


def s(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def glob(module: str, name: str) -> bytes:
    """Protocol-0 GLOBAL."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def stack_glob(module: str, name: str) -> bytes:
    return s(module) + s(name) + b"\x93"


def call1(func: bytes, arg: bytes) -> bytes:
    """func(arg) via TUPLE1 + REDUCE."""
    return func + arg + b"\x85R"


def proto(n: int, body: bytes) -> bytes:
    return b"\x80" + bytes([n]) + body + b"."


def binbytes(b: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(b)) + b


class Reduce:
    """An object whose pickle calls ``func(*args)``: ``pickle.dumps(Reduce(os.system, "..."))``."""

    def __init__(self, func: object, *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def dumps_reduce(func: object, *args: object, protocol: int = 4) -> bytes:
    return pickle.dumps(Reduce(func, *args), protocol=protocol)
