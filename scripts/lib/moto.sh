# moto's server, the local AWS emulator the AWS tests run against, in a virtualenv of
# its own (installed from PyPI on first use). The tests start it themselves on a free
# port of 127.0.0.1 (test_support::Moto); this only makes sure it is installed.
#
# Honoured: MOTO_VENV (default /var/tmp/webserver-moto).

MOTO_VENV="${MOTO_VENV:-/var/tmp/webserver-moto}"

ensure_moto() {
  if "$MOTO_VENV/bin/python" -c 'import moto.server, boto3' >/dev/null 2>&1; then
    export MOTO_PYTHON="$MOTO_VENV/bin/python"
    return
  fi
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  log "installing moto (the local AWS emulator) into $MOTO_VENV"
  rm -rf "$MOTO_VENV"
  if ! python3 -m venv "$MOTO_VENV" >/dev/null 2>&1; then
    apt_install python3-venv
    rm -rf "$MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
  fi
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.*'
  export MOTO_PYTHON="$MOTO_VENV/bin/python"
}
