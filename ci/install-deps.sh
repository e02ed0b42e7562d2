#!/usr/bin/env bash
# Installs what the integration tests need: a real Dovecot IMAP server, openssl (for the
# self-signed test certificate), libfaketime (the wall clock jumping under the daemon, in
# tests/faults.rs), and headless Chromium with its WebDriver (the dashboard test,
# tests/http_dashboard.rs) and PostgreSQL (the store and daemon tests on the second engine, each
# test binary starting a throwaway server of its own: tests/common/postgres.rs), from Debian; and
# GNU Mailman 3's core in a Python venv at $MAILMAN_VENV (default /opt/mailman3-venv), from PyPI
# with the pins of tests/mailman/requirements.txt (the Mailman target test, tests/notify_mailman.rs).
# Safe to run again.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
MAILMAN_VENV=${MAILMAN_VENV:-/opt/mailman3-venv}
if [[ ! -x "$MAILMAN_VENV/bin/runner" ]]; then
    if [[ -w "$(dirname "$MAILMAN_VENV")" ]] && command -v python3 >/dev/null; then
        # A venv from Debian's python when there is one: a user's pyenv python may live under a
        # home folder other users cannot enter.
        py=python3
        [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -m venv --help >/dev/null 2>&1 && py=/usr/bin/python3
        "$py" -m venv "$MAILMAN_VENV"
        "$MAILMAN_VENV/bin/pip" install -q --no-cache-dir -r tests/mailman/requirements.txt
    else
        echo "ci/install-deps.sh: cannot create $MAILMAN_VENV; the Mailman test will skip" >&2
    fi
fi

if command -v dovecot >/dev/null && command -v openssl >/dev/null &&
    [[ -n $(compgen -G '/usr/lib/*/faketime/libfaketimeMT.so.1') ]] &&
    command -v chromium >/dev/null && command -v chromedriver >/dev/null &&
    [[ -n $(compgen -G '/usr/lib/postgresql/*/bin/initdb') ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "ci/install-deps.sh: not root, cannot install dovecot-imapd, faketime, chromium and postgresql; the tests needing them will skip" >&2
    exit 0
fi
# Keep the package from starting the system-wide service on a host with an init system.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    dovecot-imapd openssl faketime chromium chromium-driver fonts-dejavu-core postgresql
