"""Fail fast without the Hugging Face Hub: probe it once, and use only the local cache when it is unreachable
(instead of the hub client's retries, which take tens of seconds per file). Say when offline mode, not the network,
kept a download from happening."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")  # any one keeps a client offline


def offline_mode() -> str | None:
    """The settings that put the Hugging Face clients in offline mode, as a message names them ("HF_HUB_OFFLINE=1"),
    or None when offline mode is not set (huggingface_hub's own constant counts: a program may set it)."""
    from huggingface_hub import constants

    settings = [f"{name}={os.environ[name]}" for name in OFFLINE_VARIABLES
                if os.environ.get(name, "").upper() in constants.ENV_VARS_TRUE_VALUES]
    if not settings and constants.HF_HUB_OFFLINE:
        settings = ["huggingface_hub.constants.HF_HUB_OFFLINE=True"]
    return ", ".join(settings) or None


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


def looks_like_path(name_or_path: str) -> bool:
    """A local path rather than a Hub id ("org/name"): absolute, relative to `.` or `~`, or deeper than one slash."""
    return name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1 or "\\" in name_or_path
