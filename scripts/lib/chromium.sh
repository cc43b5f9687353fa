# shellcheck shell=bash
# Makes sure Debian's chromium is there for the browser test of the dashboard, sourced
# by the scripts after scripts/lib/postgres.sh (for log and apt_install).
#
#   ensure_chromium   installs chromium (and a font, so screenshots are readable) with
#                     apt-get when missing; exports CHROMIUM

ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium fonts-dejavu-core
  fi
  CHROMIUM="$(command -v chromium)"
  export CHROMIUM
}
