"""Fail fast without the Hugging Face Hub: probe it once, and use only the local cache when it is unreachable
(instead of the hub client's retries, which take tens of seconds per file)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0


def hub_reachable() -> bool:
    """False in offline mode (HF_HUB_OFFLINE=1) or when the Hub endpoint does not accept a connection."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError:
        return False
    return True


@contextmanager
def cache_only_unless_reachable() -> Iterator[bool]:
    """Yield whether the Hub is reachable; when it is not, hub clients inside read only their local caches.
    (`datasets` is switched too when it is loaded: a model load does not need it.)"""
    from huggingface_hub import constants

    if hub_reachable():
        yield True
        return
    with ExitStack() as offline:
        offline.enter_context(mock.patch.object(constants, "HF_HUB_OFFLINE", True))
        if "datasets" in sys.modules:
            offline.enter_context(mock.patch.object(sys.modules["datasets"].config, "HF_HUB_OFFLINE", True))
        yield False
