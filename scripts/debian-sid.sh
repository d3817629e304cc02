# Sourced by scripts/setup.sh and scripts/services.sh: downloads packages from Debian sid with a
# private apt state (sources list, lists, cache and an empty dpkg status under $1's cache), so the
# host's apt configuration and installed packages are never touched.
#
#   sid_download CACHE_DIR DEST_DIR PACKAGE...    # .deb files land in DEST_DIR; returns non-zero on failure

sid_download() {
    local cache=$1 dest=$2
    shift 2
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local mirror=${MICROPI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
    if [ ! -f "$keyring" ]; then
        echo "$keyring is missing (apt-get install debian-archive-keyring), needed to verify Debian's packages" >&2
        return 1
    fi
    local apt=$cache/apt
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dest" || return 1
    echo "deb [signed-by=$keyring] $mirror sid main" >"$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Dir::State::status=/dev/null
        -o "APT::Architecture=$(dpkg --print-architecture)" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    apt-get "${opts[@]}" -qq update || { echo "apt-get update of Debian sid failed; check access to $mirror" >&2; return 1; }
    (cd "$dest" && apt-get "${opts[@]}" -qq download "$@" 2>/dev/null) \
        || { echo "apt-get download from Debian sid failed: $*" >&2; return 1; }
}
