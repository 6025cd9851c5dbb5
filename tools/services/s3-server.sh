#!/usr/bin/env bash
# s3-server.sh {start|stop|status} - single-node OpenStack Swift ("SAIO") with the
# s3api middleware, bound to 127.0.0.1 only, for tests. Debian 12, run as root.
# `eval "$(tools/services/s3-server.sh start)"` sets the S3_* variables; all else goes to stderr.
# Used by the volumes-s3 integration specs (int-test target); `status` exits 0 running,
# 1 degraded, 3 stopped. Installs Debian's swift packages with apt on first start.
# Env: S3_PORT (9000), ZXB_S3_BASE_PORT (6210: object, +1 container, +2 account,
# +3 memcached), ZXB_S3_DIR (/var/lib/zxb-s3: configs, rings, data, logs, pids).
set -euo pipefail

DIR=${ZXB_S3_DIR:-/var/lib/zxb-s3}
PORT=${S3_PORT:-9000}
BP=${ZXB_S3_BASE_PORT:-6210}
declare -A P=([object]=$BP [container]=$((BP + 1)) [account]=$((BP + 2)))
MC=$((BP + 3))
ETC=$DIR/etc LOG=$DIR/log PIDS=$DIR/pids PY=/usr/bin/python3
PKGS=(python3-swift swift swift-proxy swift-account swift-container swift-object memcached)
say() { echo "s3-server: $*" >&2; }

exports() {
  printf 'export %s\n' S3_ENDPOINT=127.0.0.1 S3_PORT="$PORT" S3_ACCESS_KEY=test:tester \
    S3_SECRET_KEY=testing S3_REGION=us-east-1 S3_USE_SSL=false
}

install_pkgs() {
  local p missing=() rc=0 prc=/usr/sbin/policy-rc.d ours=
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]} (log: $LOG/apt.log)"
  # Keep Debian's own swift-*/memcached services from auto-starting on install.
  if [[ ! -e $prc ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod +x "$prc" && ours=1 && trap 'rm -f "$prc"' EXIT
  fi
  { apt-get -o DPkg::Lock::Timeout=600 update &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
      --no-install-recommends "${missing[@]}"; } >>"$LOG/apt.log" 2>&1 9>&- || rc=$?
  [[ -z $ours ]] || { rm -f "$prc"; trap - EXIT; }
  ((rc == 0)) || { tail -n 20 "$LOG/apt.log" >&2; say "apt-get failed"; exit 1; }
}

configure() {
  mkdir -p "$ETC" "$DIR/data/d1" "$DIR/cache" /etc/swift
  # Swift keeps object metadata in user xattrs on the data directory.
  $PY -c 'import os,sys; os.setxattr(sys.argv[1], "user.zxb", b"1"); os.removexattr(sys.argv[1], "user.zxb")' \
    "$DIR/data/d1" || { say "$DIR does not support user xattrs (needed by Swift)"; exit 1; }
  # Swift always reads /etc/swift/swift.conf (hash salt, policies, limits), so we own it;
  # user-metadata values may be 2 KiB as on S3 (Swift's 256 B default gives HTTP 500).
  local sc=/etc/swift/swift.conf
  [[ -e $sc.orig || ! -e $sc ]] || grep -qs '^# zxb-s3' "$sc" || cp "$sc" "$sc.orig"
  printf '%s\n' '# zxb-s3: written by s3-server.sh (Debian original: swift.conf.orig)' \
    '[swift-hash]' 'swift_hash_path_suffix = zxb-s3' '[storage-policy:0]' 'name = Policy-0' \
    'default = yes' '[swift-constraints]' 'max_meta_value_length = 2048' >"$sc"
  local s common="bind_ip = 127.0.0.1
user = root
swift_dir = $ETC
devices = $DIR/data
mount_check = false
disable_fallocate = true
recon_cache_path = $DIR/cache"
  for s in account container object; do
    cat >"$ETC/$s-server.conf" <<EOF
[DEFAULT]
$common
bind_port = ${P[$s]}
workers = 1
log_level = WARNING
[pipeline:main]
pipeline = healthcheck $s-server
[app:$s-server]
use = egg:swift#$s
[filter:healthcheck]
use = egg:swift#healthcheck
EOF
  done
  printf '[object-updater]\ninterval = 5\n' >>"$ETC/object-server.conf" # retries failed listing updates
  cat >"$ETC/proxy-server.conf" <<EOF
[DEFAULT]
$common
bind_port = $PORT
workers = 2
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy_logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy_logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
max_upload_part_num = 10000
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MC
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
EOF
  for s in catch_errors gatekeeper healthcheck proxy_logging listing_formats copy dlo versioned_writes; do
    printf '[filter:%s]\nuse = egg:swift#%s\n' "$s" "$s" >>"$ETC/proxy-server.conf"
  done
  # Rings: 2^10 partitions, 1 replica, one directory "device". Rebuilt only if ports change.
  [[ $(cat "$ETC/ring-ports" 2>/dev/null) != "$BP" ]] || return 0
  for s in account container object; do
    rm -f "$ETC/$s.builder"
    swift-ring-builder "$ETC/$s.builder" create 10 1 1 >/dev/null
    swift-ring-builder "$ETC/$s.builder" add "r1z1-127.0.0.1:${P[$s]}/d1" 100 >/dev/null
    swift-ring-builder "$ETC/$s.builder" rebalance >/dev/null
  done
  echo "$BP" >"$ETC/ring-ports"
}

# probe free|ready: are all our ports free? / do proxy, backends and auth answer (60 s)?
probe() {
  PIDLIST=$(cut -d' ' -f1 "$PIDS" 2>/dev/null) $PY - "$1" "$PORT" "${P[@]}" "$MC" <<'EOF'
import os, socket, sys, time, urllib.request as u
mode, port, *backends = sys.argv[1], *map(int, sys.argv[2:])
if mode == "free":
    busy = [p for p in [port] + backends if socket.socket().connect_ex(("127.0.0.1", p)) == 0]
    sys.exit("ports already in use: %s" % busy if busy else 0)
def get(path, p=port, **hdrs):
    return u.urlopen(u.Request("http://127.0.0.1:%d%s" % (p, path), headers=hdrs), timeout=3)
def died():  # has one of our processes exited (or become a zombie)?
    try: return not all(open("/proc/%s/cmdline" % p).read() for p in os.environ["PIDLIST"].split())
    except OSError: return True
deadline, err = time.time() + 60, None
while time.time() < deadline and not died():
    try:
        for p in [port] + backends[:-1]: get("/healthcheck", p)
        tok = get("/auth/v1.0", **{"X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
        get("/v1/AUTH_test", **{"X-Auth-Token": tok.headers["X-Auth-Token"]})
        sys.exit(0)
    except Exception as e:
        err = e; time.sleep(0.3)
sys.exit("a server process exited" if died() else "not ready: %s" % err)
EOF
}

# launch TAG CMD...: run CMD in its own session (so pgid = pid), log to $LOG/TAG.log.
launch() {
  local tag=$1; shift
  setsid "$@" </dev/null >>"$LOG/$tag.log" 2>&1 9>&- &
  echo "$! $tag" >>"$PIDS"
}

# alive PID TAG: PID runs and its command line contains TAG (guards against PID reuse).
alive() { [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") == *"$2"* ]]; }

# signal SIG|0: send SIG to the process group of each tracked, live process; print their count.
signal() {
  local n=0 pid tag
  [[ -f $PIDS ]] && while read -r pid tag; do
    alive "$pid" "$tag" || continue
    n=$((n + 1)); [[ $1 == 0 ]] || kill "-$1" -- "-$pid" 2>/dev/null || true
  done <"$PIDS"
  echo "$n"
}
running() { [[ -s $PIDS ]] && (($(signal 0) == $(wc -l <"$PIDS"))); }

stop() {
  [[ -f $PIDS ]] || { say "not running"; return 0; }
  signal TERM >/dev/null
  for _ in {1..50}; do (($(signal 0))) || break; sleep 0.2; done
  (($(signal KILL) == 0)) || say "some processes needed SIGKILL"
  rm -f "$PIDS"; say "stopped"
}

start() {
  if running; then say "already running on 127.0.0.1:$PORT"; exports; return 0; fi
  ((EUID == 0)) || { say "start must run as root"; exit 1; }
  [[ ! -f $PIDS ]] || stop # clean up after a partial or crashed earlier start
  install_pkgs
  configure
  probe free || exit 1
  launch memcached memcached -l 127.0.0.1 -p "$MC" -U 0 -m 64 -u nobody
  for s in account container object; do launch "swift-$s-server" "swift-$s-server" "$ETC/$s-server.conf" -v; done
  launch swift-object-updater swift-object-updater "$ETC/object-server.conf" -v
  launch swift-proxy-server swift-proxy-server "$ETC/proxy-server.conf" -v
  if ! probe ready; then
    tail -qn 5 "$LOG"/swift-*.log >&2; stop; say "start failed; logs in $LOG"; exit 1
  fi
  say "Swift $(dpkg-query -W -f='${Version}' python3-swift) with s3api ready on 127.0.0.1:$PORT"
  exports
}

status() {
  [[ -f $PIDS ]] || { say "stopped"; return 3; }
  local pid tag rc=0
  while read -r pid tag; do
    if alive "$pid" "$tag"; then say "$tag: running ($pid)"; else say "$tag: DEAD ($pid)"; rc=1; fi
  done <"$PIDS"
  return $rc
}

mkdir -p "$DIR" "$LOG"
exec 9>"$DIR/lock"; flock 9 # serialise concurrent invocations
case ${1:-} in
  start) start ;; stop) stop ;; status) status ;;
  *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
