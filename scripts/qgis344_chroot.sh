#!/usr/bin/env bash
# The second point of the test matrix: QGIS 3.44 (Debian sid: Python 3.14, numpy 2, GDAL 3.1x, rasterio 1.5)
# in a chroot, next to the host's QGIS 3.22 (the oldest QGIS the plugin supports).
#
#   scripts/qgis344_chroot.sh build        # debootstrap + apt + venv, once (minutes, ~2.2 GB); later calls: seconds
#   scripts/qgis344_chroot.sh test         # build if needed, then the plugin, engine and qgis_process tests there
#   scripts/qgis344_chroot.sh run CMD...   # any command in the chroot, in the checkout (e.g. bash, qgis_process)
#
# The chroot lives outside the repository, in $QGIS344_CHROOT (default /var/cache/landslide-mapper/qgis344-sid),
# so reruns are fast and `git clean` never touches it. Needs root (debootstrap, mount, chroot) and the network
# for the first build. The checkout is bind-mounted at the same path inside, and ../shared beside it when present,
# so tests find the real data exactly as on the host.
set -euo pipefail

CHROOT=${QGIS344_CHROOT:-/var/cache/landslide-mapper/qgis344-sid}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=$(cd "$REPO/.." && pwd)/shared
VENV=/opt/landslide-venv
APT_PACKAGES="qgis python3-qgis python3-venv python3-pip python3-rasterio python3-h5py ca-certificates make"
# The project's requirements, less what this matrix point leaves out on purpose: torch and its model zoo (the tests
# that need them skip; the plugin tests build their models with onnx's helpers), and the lint tools (run on the
# host). numpy, rasterio and h5py are Debian's (apt), so only the constraints that are not about them apply.
NOT_HERE='^(torch|segmentation-models-pytorch|ruff|import-linter|mypy|numpy|rasterio|h5py)([=<>!~ ;[]|$)'
PIP_PACKAGES=$(grep -vE '^\s*(#|$)' "$REPO/requirements.txt" | grep -viE "$NOT_HERE" | tr '\n' ' ')
PIP_CONSTRAINTS=$(grep -vE '^\s*(#|$)' "$REPO/constraints.txt" | grep -viE "$NOT_HERE" | tr '\n' ' ')
# installed without its dependencies, as the Makefile does: only its LightGBM model file is used
PIP_NO_DEPS="s2cloudless"
# rebuilt (apt and pip steps only) whenever the package lists change
STAMP=$CHROOT/.landslide-build-$(echo "$APT_PACKAGES $PIP_PACKAGES $PIP_CONSTRAINTS $PIP_NO_DEPS" | md5sum | cut -c1-12)

log() { printf '[qgis344] %s\n' "$*" >&2; }

mounted=()
mount_all() {
    local target
    for target in proc sys dev dev/pts "$REPO" "$SHARED"; do
        case $target in
            proc) set -- -t proc proc ;;
            sys) set -- -t sysfs sysfs ;;
            dev) set -- --bind /dev ;;
            dev/pts) set -- --bind /dev/pts ;;
            "$SHARED") [[ -d $SHARED ]] || continue; set -- --bind "$SHARED" ;;
            *) set -- --bind "$target" ;;
        esac
        local dir=$CHROOT/${target#/}
        mkdir -p "$dir"
        if ! mountpoint -q "$dir"; then
            mount "$@" "$dir"
            mount --make-private "$dir"  # nothing mounted below it may propagate back to the host
            mounted=("$dir" "${mounted[@]}")
        fi
    done
}
umount_all() {
    local dir
    for dir in "${mounted[@]}"; do umount -l "$dir" || true; done
    mounted=()
}

in_chroot() {
    # a clean environment: the host's venv, PYTHONPATH or QGIS settings must not leak in; only the host's
    # network settings do (a proxy, and the CA bundle that TLS-intercepting proxies need)
    local ca=/etc/ssl/certs/ca-certificates.crt passed=() name
    for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_DEFAULT_TIMEOUT; do
        [[ -n ${!name:-} ]] && passed+=("$name=${!name}")
    done
    mkdir -p -m 0700 "$CHROOT/tmp/runtime-root"  # as a desktop session has it; Qt warns on stderr without
    chroot "$CHROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 XDG_RUNTIME_DIR=/tmp/runtime-root DEBIAN_FRONTEND=noninteractive QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 \
        SSL_CERT_FILE=$ca PIP_CERT=$ca REQUESTS_CA_BUNDLE=$ca PIP_DISABLE_PIP_VERSION_CHECK=1 "${passed[@]}" \
        "$@"
}

refresh_host_files() {
    # pip inside needs the host's CA bundle (TLS proxies add their root there); gloo/torch and Qt need /etc/hosts
    cp /etc/ssl/certs/ca-certificates.crt "$CHROOT/etc/ssl/certs/ca-certificates.crt" 2>/dev/null \
        || { mkdir -p "$CHROOT/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$CHROOT/etc/ssl/certs/"; }
    cp /etc/hosts /etc/resolv.conf "$CHROOT/etc/"
}

build() {
    if [[ -f $STAMP ]]; then
        log "chroot ready at $CHROOT ($(cat "$STAMP"))"
        return
    fi
    command -v debootstrap >/dev/null || { log "needs debootstrap: apt-get install debootstrap"; exit 2; }
    if [[ ! -x $CHROOT/usr/bin/apt-get ]]; then
        log "debootstrap sid into $CHROOT"
        rm -rf "$CHROOT"
        mkdir -p "$(dirname "$CHROOT")"
        debootstrap --variant=minbase sid "$CHROOT.partial" "$MIRROR"
        mv "$CHROOT.partial" "$CHROOT"
    fi
    # sid's Release files can read as expired between pushes
    echo 'Acquire::Check-Valid-Until "false";' >"$CHROOT/etc/apt/apt.conf.d/99no-valid-until"
    refresh_host_files
    mount_all
    trap umount_all EXIT
    log "apt: $APT_PACKAGES"
    in_chroot apt-get update -qq
    in_chroot apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
    refresh_host_files  # installing ca-certificates rewrote the bundle without the host's own roots
    log "venv $VENV (--system-site-packages): $PIP_PACKAGES"
    [[ -x $CHROOT$VENV/bin/python ]] || in_chroot python3 -m venv --system-site-packages "$VENV"
    printf '%s\n' $PIP_CONSTRAINTS >"$CHROOT/tmp/landslide-constraints.txt"
    in_chroot "$VENV/bin/python" -m pip install -q --upgrade -c /tmp/landslide-constraints.txt $PIP_PACKAGES
    in_chroot "$VENV/bin/python" -m pip install -q --no-deps -c /tmp/landslide-constraints.txt $PIP_NO_DEPS
    local versions
    versions=$(in_chroot "$VENV/bin/python" -c "
import sys, numpy, rasterio, onnxruntime
from osgeo import gdal
from qgis.core import Qgis
print(f'QGIS {Qgis.QGIS_VERSION}, Python {sys.version.split()[0]}, numpy {numpy.__version__}, '
      f'GDAL {gdal.__version__}, rasterio {rasterio.__version__}, onnxruntime {onnxruntime.__version__}')")
    echo "$versions" >"$STAMP"
    log "chroot ready: $versions"
}

run_in_checkout() {
    build
    refresh_host_files
    mount_all
    trap umount_all EXIT
    in_chroot /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$REPO" "$@"
}

# one run at a time: a second one would unmount proc, sys and dev under the first when it ends
mkdir -p "$(dirname "$CHROOT")"
exec 9>"$CHROOT.lock"
flock 9

case ${1:-test} in
    build) build ;;
    test)
        shift || true
        # the whole suite (plugin, engine, qgis_process) with the chroot's QGIS 3.44 and Python 3.14; here the
        # installer test may install onnxruntime from the package index into the system Python's plugin folder
        run_in_checkout /usr/bin/env LANDSLIDE_TEST_PIP_INSTALL=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
        ;;
    run)
        shift
        run_in_checkout "$@"
        ;;
    *)
        echo "usage: $0 build | test [pytest args] | run CMD..." >&2
        exit 2
        ;;
esac
