#!/usr/bin/env bash
# Installs what the integration tests need: a real Dovecot IMAP server, openssl (for the
# self-signed test certificate), libfaketime (the wall clock jumping under the daemon, in
# tests/faults.rs), and headless Chromium with its WebDriver (the dashboard test,
# tests/http_dashboard.rs). Debian packages; safe to run again.
set -euo pipefail

if command -v dovecot >/dev/null && command -v openssl >/dev/null &&
    [[ -n $(compgen -G '/usr/lib/*/faketime/libfaketimeMT.so.1') ]] &&
    command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "ci/install-deps.sh: not root, cannot install dovecot-imapd, faketime and chromium; the tests needing them will skip" >&2
    exit 0
fi
# Keep the package from starting the system-wide service on a host with an init system.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    dovecot-imapd openssl faketime chromium chromium-driver fonts-dejavu-core
