# The Python tools the tests run against, in a virtualenv of their own (installed from
# PyPI on first use): moto's server, the local AWS emulator, aiosmtpd, a real SMTP
# server, and kubernetes-validate, which checks deploy/kubernetes against the Kubernetes
# schemas it bundles (no cluster runs here). The tests start them themselves on free ports of 127.0.0.1 (test_support::Moto,
# test_support::SmtpServer); this only makes sure they are installed, and exports
# TEST_PYTHON, the interpreter that has them.
#
# Honoured: TOOLS_VENV (default /var/tmp/webserver-tools).

TOOLS_VENV="${TOOLS_VENV:-/var/tmp/webserver-tools}"
TOOLS_REQUIREMENTS=("moto[server]==5.2.*" "aiosmtpd==1.4.*" "kubernetes-validate==1.*")

ensure_python_tools() {
  if "$TOOLS_VENV/bin/python" -c 'import moto.server, boto3, aiosmtpd, kubernetes_validate' >/dev/null 2>&1; then
    export TEST_PYTHON="$TOOLS_VENV/bin/python"
    return
  fi
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  log "installing ${TOOLS_REQUIREMENTS[*]} into $TOOLS_VENV"
  rm -rf "$TOOLS_VENV"
  if ! python3 -m venv "$TOOLS_VENV" >/dev/null 2>&1; then
    apt_install python3-venv
    rm -rf "$TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV"
  fi
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS_REQUIREMENTS[@]}"
  export TEST_PYTHON="$TOOLS_VENV/bin/python"
}
