# Shared by .ci/run and .ci/arm (sourced, not run).

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

# Runs a cargo command with clippy -D warnings on this crate as it really builds: clippy-driver
# wraps rustc for the workspace only (CLIPPY_ARGS is how cargo-clippy hands it its arguments), so
# the lints cost no second build and the dependencies (tract, candle: minutes on 2 cores) are
# compiled once; `cargo clippy` would check them all again. The generated code is rustc's. A later
# cargo command on the same artifacts needs the same wrapper, or cargo rebuilds the crate.
with_clippy() {
  RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)" \
    CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" "$@"
}

# Fails (status 1, saying why) if a build log has a compiler or clippy warning or error.
no_warnings() {
  if grep -qE '^(warning|error)(\[|:)' "$1"; then
    echo "error: $2: the compiler or clippy reported the warnings above"
    return 1
  fi
}

# Installs Debian packages, as root or through sudo: apt-get update, then apt-get install with
# these arguments (package names, --no-install-recommends). The three scripts' one way to do it.
apt_install() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$@"
}
