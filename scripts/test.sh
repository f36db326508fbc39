#!/usr/bin/env bash
# The project's test command (README). Installs what the tests need when missing, then
# runs the formatter check, clippy and every test (interop tests with the real peers
# included). Works on a fresh machine as root, or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the interop tests use, one per line: "command package".
APT_PEERS="
nc netcat-openbsd
socat socat
rsync rsync
rdate rdate
python3 python3
openssl openssl
tftp tftp-hpa
in.tftpd tftpd-hpa
atftp atftp
curl curl
tmux tmux
irssi irssi
weechat-headless weechat-headless
nats-server nats-server
ngircd ngircd
inspircd inspircd
chromium chromium
ip iproute2
perl perl
chronyd chrony
ntpdig ntpsec-ntpdate
tshark tshark
"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=""
apt_update() {
    [ -n "$apt_updated" ] || $SUDO apt-get update -qq
    apt_updated=1
}

need=()
while read -r cmd pkg; do
    [ -n "${cmd:-}" ] || continue
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done <<<"$APT_PEERS"
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing test peers: ${need[*]}"
    apt_update
    # Peers such as chrony and tftpd-hpa start a system service on install; the tests
    # start their own on free ports, so installs run with service starts held.
    held=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        held=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    [ -z "$held" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi

# The reader draws generated covers with the system's fonts; its cover test needs a CJK
# one (a package of fonts provides no command, so it is checked by name).
if ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then
    echo "==> installing fonts-noto-cjk (the reader's generated covers of CJK titles)"
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends fonts-noto-cjk >/dev/null
fi

# atftpd and tftpd-hpa conflict as Debian packages (both provide the system tftp
# service), but the tests start both servers themselves on free ports. So atftpd's
# binary is unpacked from its .deb (with its libraries installed) instead of installed.
if ! command -v atftpd >/dev/null 2>&1 && [ ! -x /usr/local/sbin/atftpd ]; then
    echo "==> unpacking atftpd (it conflicts with tftpd-hpa as a package)"
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libwrap0 libpcre2-8-0 >/dev/null
    deb_dir=$(mktemp -d)
    chmod 777 "$deb_dir"
    (cd "$deb_dir" && $SUDO apt-get download -qq atftpd)
    $SUDO mkdir -p /opt/sockit-peers/atftpd
    $SUDO dpkg-deb -x "$deb_dir"/atftpd_*.deb /opt/sockit-peers/atftpd
    $SUDO ln -sf /opt/sockit-peers/atftpd/usr/sbin/atftpd /usr/local/sbin/atftpd
    rm -rf "$deb_dir"
fi

# The lab's python-gevent model needs gevent, which is not in Python's standard
# library: a project-local virtual environment (.venv-lab, git-ignored) gets it from PyPI
# once; the tests run every Python model with its interpreter (SOCKIT_LAB_PYTHON).
if ! .venv-lab/bin/python -c 'import gevent' >/dev/null 2>&1; then
    echo "==> creating .venv-lab with gevent (the lab's python-gevent model)"
    if ! python3 -m venv .venv-lab >/dev/null 2>&1; then
        rm -rf .venv-lab
        apt_update
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv .venv-lab
    fi
    .venv-lab/bin/python -m pip install -q gevent
fi
SOCKIT_LAB_PYTHON="$PWD/.venv-lab/bin/python"
export SOCKIT_LAB_PYTHON

# The reader's end-to-end web UI test drives the system's chromium with Playwright:
# playwright-core from npm (no browser download), installed into the git-ignored
# crates/reader/tests/e2e/node_modules from the committed package-lock.json. `npm ci` runs
# again only when that is missing or the lock file changed since the last install.
E2E=crates/reader/tests/e2e
if [ ! -f "$E2E/node_modules/playwright-core/package.json" ] \
    || ! cmp -s "$E2E/package-lock.json" "$E2E/node_modules/.installed-package-lock.json"; then
    node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if ! command -v npm >/dev/null 2>&1 || [ "$node_major" -lt 20 ]; then
        echo "error: the reader's Playwright test needs Node.js 20 or newer with npm; install" \
            "them (Debian 13: apt-get install nodejs npm; Debian 12's nodejs is 18, too old)" >&2
        exit 1
    fi
    echo "==> installing playwright-core into $E2E/node_modules (the reader's web UI test)"
    (cd "$E2E" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
    cp "$E2E/package-lock.json" "$E2E/node_modules/.installed-package-lock.json"
fi

for comp in rustfmt clippy; do
    if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
        echo "==> installing rustup component $comp"
        rustup component add "$comp"
    fi
done

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo test"
# No test may skip here: SOCKIT_TEST_SKIP (docs/testing.md) is for machines that lack a
# kernel feature, never for this command.
unset SOCKIT_TEST_SKIP
cargo test --workspace --all-features
