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
rdate rdate
python3 python3
openssl openssl
"

need=()
while read -r cmd pkg; do
    [ -n "${cmd:-}" ] || continue
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done <<<"$APT_PEERS"
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing test peers: ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
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
cargo test --workspace --all-features
