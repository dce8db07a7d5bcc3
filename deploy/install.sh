#!/usr/bin/env bash
# Install packyard into PREFIX: a virtual environment of its own, with the `packyard` command at
# PREFIX/bin/packyard. These are the container image's build steps (deploy/Dockerfile runs this script and
# nothing else), and the test suite runs the same script in an empty directory (tests/test_deploy.py).
#
#   deploy/install.sh [--from SOURCE] [--user NAME] [--data-dir DIR] PREFIX
#
#   --from SOURCE   a packyard checkout (a directory with pyproject.toml) or a built wheel (.whl);
#                   default: the checkout this script is in
#   --user NAME     create the system user NAME (no login shell, no home of its own) to run the server;
#                   only as root, and only when asked
#   --data-dir DIR  create the data directory (mode 0700, owned by --user when given)
#
# PYTHON names the interpreter (default python3, 3.11 or newer). pip reads its usual settings (PIP_INDEX_URL,
# PIP_NO_CACHE_DIR, ...) from the environment. Nothing is installed outside PREFIX, DIR and the user database.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
source_path=$here
user=""
data_dir=""
die() { echo "install.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --from) [ $# -ge 2 ] || die "--from needs a checkout directory or a wheel"; source_path=$2; shift 2 ;;
        --user) [ $# -ge 2 ] || die "--user needs a name"; user=$2; shift 2 ;;
        --data-dir) [ $# -ge 2 ] || die "--data-dir needs a directory"; data_dir=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || die "give exactly one PREFIX, e.g. deploy/install.sh /opt/packyard (see --help)"
prefix=$1
if [ -n "$user" ] && [ "$(id -u)" != 0 ]; then
    die "--user $user creates a system user, which needs root; leave it out to run as $(id -un)"
fi

python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "$python not found: install Python 3.11 or newer, or set PYTHON"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$python is $("$python" -c 'import sys; print(sys.version.split()[0])'); packyard needs 3.11 or newer"
if [ -f "$source_path/pyproject.toml" ] || [[ "$source_path" == *.whl && -f "$source_path" ]]; then :
else die "--from $source_path is neither a packyard checkout nor a wheel"; fi

# The virtual environment: packyard and its dependencies only, nothing from the system's site-packages.
"$python" -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --disable-pip-version-check "$source_path"
"$prefix/bin/packyard" --help >/dev/null

if [ -n "$user" ] && ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir "${data_dir:-/nonexistent}" \
        --shell /usr/sbin/nologin "$user"
fi
if [ -n "$data_dir" ]; then
    mkdir -p "$data_dir"
    chmod 0700 "$data_dir"
    [ -z "$user" ] || chown "$user:$user" "$data_dir"
fi
echo "installed $("$prefix/bin/python" -m pip show packyard 2>/dev/null | sed -n 's/^Version: /packyard /p') into $prefix"
