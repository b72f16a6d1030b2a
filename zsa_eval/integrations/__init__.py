"""Bridges to other evaluation harnesses. mteb (MTEB/MAEB) is an optional extra: `pip install 'zsa-eval[mteb]'`;
everything that needs it imports it through `import_mteb`, so that without it a run says so in one line."""

from __future__ import annotations

from types import ModuleType

from zsa_eval.errors import UserError

MTEB_VERSION = "2.26.24"  # the mteb the extra pins: protocol=mteb reproduces this version's evaluators


def import_mteb(feature: str) -> ModuleType:
    """mteb, or one line naming the extra that `feature` (e.g. "protocol=mteb") needs."""
    try:
        import mteb
    except ImportError:
        raise UserError(f"{feature} needs mteb, an optional extra: pip install 'zsa-eval[mteb]' "
                        f"(mteb=={MTEB_VERSION})") from None
    return mteb
