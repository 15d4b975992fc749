"""The message bus of an engine that publishes nothing outside the process (a backtest).

nautilus' `MessageBus.publish` tests every message with `isinstance(msg, publishable_types)`, a tuple of the 69
types it could stream to a database or a listener, before it looks whether there is one. A backtest has neither, and
each market data message that is not in the tuple (or sits late in it: the tuple's order comes from a set of types,
so it changes from process to process) is tested against every entry: about 13% of a backtest's instructions, bare
engine and full strategy alike. `MessageBusConfig.types_filter` ("types not to publish externally") empties the tuple.

nautilus keeps the set in a Cython module variable with no Python name; it exports a pointer to it (`__pyx_capi__`),
read here. If a nautilus release moves it, the filter is left out (the bus then works as before, only slower), and
`tests/test_message_bus.py` fails on that release.
"""

from __future__ import annotations

import ctypes

from nautilus_trader.common.config import MessageBusConfig


def publishable_types() -> set[type]:
    """nautilus' set of the types its message bus publishes externally; empty if this nautilus does not export it."""
    try:
        from nautilus_trader.serialization import base

        capsule = base.__pyx_capi__["_EXTERNAL_PUBLISHABLE_TYPES"]
        # a prototype of our own (ctypes.pythonapi's function objects are shared by the whole process)
        get = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
            ("PyCapsule_GetPointer", ctypes.pythonapi))
        found = ctypes.cast(get(capsule, b"PyObject *"), ctypes.POINTER(ctypes.py_object)).contents.value
    except (ImportError, AttributeError, KeyError, ValueError):
        return set()
    return set(found) if isinstance(found, set) else set()


def in_process_message_bus() -> MessageBusConfig | None:
    """The config of a message bus that streams nothing out of the process (a backtest's): None, nautilus' default,
    where this nautilus does not export its publishable types."""
    types = publishable_types()
    return MessageBusConfig(types_filter=sorted(types, key=lambda t: t.__qualname__)) if types else None
