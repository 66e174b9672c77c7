# Sourced by the scripts that fetch packages of another Debian suite without touching the
# system (tests/servers/setup.sh, bench/peers/python/setup.sh).
#
# private_apt APT_DIR SUITE KEYRING sets up a private apt configuration in APT_DIR for
# SUITE (its own sources.list, lists and caches; the system's dpkg status is neither read
# nor written), fills the array `apt_opts` with the options that point apt-get and apt-cache
# at it, and fetches the suite's package lists. It returns non-zero when the update fails.

private_apt() {
  local apt_dir="$1" suite="$2" keyring="$3"
  mkdir -p "$apt_dir/etc/apt.conf.d" "$apt_dir/etc/preferences.d" \
    "$apt_dir/etc/sources.list.d" "$apt_dir/state/lists/partial" \
    "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" \
    >"$apt_dir/etc/sources.list"
  apt_opts=(
    -o "Dir::Etc=$apt_dir/etc"
    -o "Dir::Etc::sourcelist=$apt_dir/etc/sources.list"
    -o "Dir::Etc::sourceparts=$apt_dir/etc/sources.list.d"
    -o "Dir::Etc::preferences=$apt_dir/etc/preferences"
    -o "Dir::Etc::preferencesparts=$apt_dir/etc/preferences.d"
    -o "Dir::State=$apt_dir/state"
    -o "Dir::State::status=/dev/null"
    -o "Dir::Cache=$apt_dir/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
  )
  echo "$suite: fetching the package lists (private apt state in $apt_dir)"
  apt-get "${apt_opts[@]}" -qq update
}
