"""scripts/install.sh, read as text (running it needs root and apt)."""

import re
from pathlib import Path

INSTALL_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install.sh"


def test_every_apt_get_call_waits_for_the_dpkg_lock():
    """Another apt or dpkg holding the lock (unattended upgrades on a fresh machine) must not fail the install."""
    commands = [line for line in INSTALL_SCRIPT.read_text().splitlines()
                if re.search(r"\bapt-get\b", line) and not line.lstrip().startswith("#")]
    assert len(commands) == 2  # update and install
    assert all(re.search(r"apt-get -o DPkg::Lock::Timeout=\d+ ", command) for command in commands), commands
