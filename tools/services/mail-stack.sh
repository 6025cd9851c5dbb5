#!/usr/bin/env bash
# Loopback-only mail/groupware test stack for the backup tests (Debian 12, run as root):
#   Dovecot IMAP :10143 + LMTP :10024, OpenLDAP :10389, Radicale CardDAV/CalDAV :5232.
#   Dovecot's Maildir++ tree is $ZXB_VMAIL (/var/vmail), its passwd-file $ZXB_DOVECOT_USERS: the maildir
#   connector's integration test adds its own users to that file (Dovecot re-reads it on change).
# Usage: mail-stack.sh start   install missing packages, write configs, start, print `export` lines
#        mail-stack.sh seed    load sample domains/users/mail/contacts/calendars (idempotent)
#        mail-stack.sh stop    stop what `start` started (by PID file)
#        mail-stack.sh status
# Typical: eval "$(mail-stack.sh start)" && mail-stack.sh seed
set -euo pipefail

Z=${ZXB_STATE:-/var/lib/zxb-mail}        # configs, PID files, logs, LDAP database
VMAIL=/var/vmail                         # Maildir++ per user: $VMAIL/<domain>/<user>/Maildir
DAVDIR=/var/lib/radicale-zxb             # Radicale storage
IMAP_PORT=${IMAP_PORT:-10143} LMTP_PORT=${LMTP_PORT:-10024} LDAP_PORT=${LDAP_PORT:-10389} DAV_PORT=${DAV_PORT:-5232}
MASTER_USER=admin MASTER_PASS=master-secret      # IMAP login "user@domain*admin" / master-secret
LDAP_BASE=dc=example,dc=test LDAP_BIND_PW=ldap-secret
LDAP_BIND_DN=cn=admin,$LDAP_BASE
DAV_ADMIN_USER=admin DAV_ADMIN_PASS=dav-secret   # may read/write every user's collections
USERS="alice@alpha.test bob@alpha.test carol@alpha.test dave@beta.test erin@beta.test"
PKGS="dovecot-imapd dovecot-lmtpd slapd ldap-utils radicale python3-bcrypt"
PY=/usr/bin/python3                      # Debian's python (not a pyenv shim)
pw() { echo "${1%@*}-pw"; }              # user password: alice@alpha.test -> alice-pw
log() { echo "mail-stack: $*" >&2; }

install_pkgs() {
  local p need=()
  for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p"); done
  ((${#need[@]})) || return 0
  log "installing ${need[*]}"
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections  # no default DB/password prompt
  # Keep package postinst scripts from starting the stock daemons on public ports.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y --no-install-recommends)
  "${apt[@]}" "${need[@]}" >&2 || { apt-get -o DPkg::Lock::Timeout=600 -qq update >&2; "${apt[@]}" "${need[@]}" >&2; }
}

pid_of() {  # pid_of NAME -> PID if its PID file points at a live process of that daemon
  local f pid comm
  case $1 in dovecot) f=$Z/run/dovecot/master.pid comm=dovecot ;; slapd) f=$Z/run/slapd.pid comm=slapd ;;
    radicale) f=$Z/run/radicale.pid comm=radicale ;; esac
  pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && grep -q "$comm" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

answers() {  # answers NAME: does the service respond to its protocol?
  case $1 in
    dovecot) ( exec 3<>"/dev/tcp/127.0.0.1/$IMAP_PORT" && read -r -t 3 l <&3 && [[ $l == "* OK"* ]] ) 2>/dev/null ;;
    slapd) ldapwhoami -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "$LDAP_BIND_DN" -w "$LDAP_BIND_PW" >/dev/null 2>&1 ;;
    radicale) ( exec 3<>"/dev/tcp/127.0.0.1/$DAV_PORT" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 &&
                read -r -t 3 l <&3 && [[ $l == HTTP/* ]] ) 2>/dev/null ;;
  esac
}

wait_for() { local _; for _ in $(seq 150); do answers "$1" && return 0; sleep 0.2; done; log "$1 did not answer; see $Z/log"; return 1; }

write_dovecot() {
  id vmail >/dev/null 2>&1 || useradd --system --user-group --home-dir "$VMAIL" --no-create-home --shell /usr/sbin/nologin vmail
  install -d -o vmail -g vmail "$VMAIL"; install -d -m 755 "$Z/dovecot"
  local u; : >"$Z/dovecot/users.new"
  for u in $USERS; do echo "$u:$(doveadm pw -s SHA512-CRYPT -p "$(pw "$u")")::::::" >>"$Z/dovecot/users.new"; done
  mv "$Z/dovecot/users.new" "$Z/dovecot/users"
  echo "$MASTER_USER:$(doveadm pw -s SHA512-CRYPT -p "$MASTER_PASS")" >"$Z/dovecot/master-users"
  touch "$Z/log/mail-events.jsonl"; chown vmail:vmail "$Z/log/mail-events.jsonl"  # written by mail processes (uid vmail)
  { echo "local out = '$Z/log/mail-events.jsonl'"; cat <<'EOF'; } >"$Z/dovecot/push.lua"
-- push_notification lua driver: one JSON line per mail event, for every account and mailbox.
local function j(v)
  local t = type(v)
  if t == "table" then local a = {}; for i, x in ipairs(v) do a[i] = j(x) end; return "[" .. table.concat(a, ",") .. "]"
  elseif t == "number" then return tostring(math.tointeger(v) or v)
  elseif t == "boolean" then return tostring(v) end
  return '"' .. (tostring(v):gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)) .. '"'
end
function dovecot_lua_notify_begin_txn(user) return { user = user.username, lines = {} } end
for _, k in ipairs({ "message_new", "message_append", "message_expunge", "message_read", "message_trash", "flags_set", "flags_clear",
                     "mailbox_create", "mailbox_delete", "mailbox_rename", "mailbox_subscribe", "mailbox_unsubscribe" }) do
  _G["dovecot_lua_notify_event_" .. k] = function(ctx, ev)
    local f = { '"ts":' .. j(os.date("!%Y-%m-%dT%H:%M:%SZ")), '"user":' .. j(ctx.user) }
    for key, val in pairs(ev) do f[#f + 1] = j(key) .. ":" .. j(val) end
    ctx.lines[#ctx.lines + 1] = "{" .. table.concat(f, ",") .. "}\n"
  end
end
function dovecot_lua_notify_end_txn(ctx, success)
  if #ctx.lines == 0 then return end
  local fh = io.open(out, "a"); fh:write(table.concat(ctx.lines)); fh:close()
end
EOF
  cat >"$Z/dovecot/dovecot.conf" <<EOF
# Written by mail-stack.sh; standalone (does not include /etc/dovecot/conf.d).
base_dir = $Z/run/dovecot
state_dir = $Z/dovecot/state
instance_name = zxb-dovecot
listen = 127.0.0.1
protocols = imap lmtp
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
log_path = $Z/log/dovecot.log
mail_location = maildir:$VMAIL/%d/%n/Maildir
first_valid_uid = $(id -u vmail)
mailbox_list_index = yes  # needed for NOTIFY (RFC 5465); the 2.3 default
# Change feeds for all accounts: mail_log -> one line per change in dovecot.log;
# push_notification lua -> one JSON line per event in mail-events.jsonl (see push.lua).
mail_plugins = \$mail_plugins notify mail_log push_notification mail_lua push_notification_lua
plugin {
  mail_log_events = save copy delete undelete expunge flag_change mailbox_create mailbox_delete mailbox_rename
  mail_log_fields = uid box msgid size vsize flags
  push_notification_driver = lua:file=$Z/dovecot/push.lua
}
passdb {
  driver = passwd-file
  args = $Z/dovecot/master-users
  master = yes
  result_success = continue
}
passdb {
  driver = passwd-file
  args = $Z/dovecot/users
}
userdb {
  driver = passwd-file
  args = $Z/dovecot/users
  default_fields = uid=vmail gid=vmail home=$VMAIL/%d/%n
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
EOF
}

write_slapd() {
  install -d -m 700 "$Z/ldap"
  cat >"$Z/zxb.schema" <<'EOF'
# Minimal Zimbra-like schema. 1.3.6.1.4.1.32473 is IANA's documentation PEN (RFC 5612).
objectIdentifier zxb 1.3.6.1.4.1.32473.1
attributetype ( zxb:1.1 NAME 'zxbAccountStatus' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( zxb:1.2 NAME 'zxbCOSId' DESC 'DN of the class of service' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 SINGLE-VALUE )
attributetype ( zxb:1.3 NAME 'zxbPrefLocale' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( zxb:1.4 NAME 'zxbPrefTimeZone' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( zxb:1.5 NAME 'zxbPrefMailForwardingAddress' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
attributetype ( zxb:1.6 NAME 'zxbMailQuota' DESC 'bytes' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( zxb:1.7 NAME 'zxbMailAlias' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
attributetype ( zxb:1.8 NAME 'zxbDomainName' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( zxb:1.9 NAME 'zxbFeature' DESC 'enabled feature' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( zxb:2.1 NAME 'zxbAccount' AUXILIARY MAY ( zxbAccountStatus $ zxbCOSId $ zxbPrefLocale $ zxbPrefTimeZone $ zxbPrefMailForwardingAddress $ zxbMailQuota $ zxbMailAlias ) )
objectclass ( zxb:2.2 NAME 'zxbDistributionList' AUXILIARY MAY ( mail $ zxbMailAlias $ zxbAccountStatus ) )
objectclass ( zxb:2.3 NAME 'zxbCOS' STRUCTURAL SUP top MUST cn MAY ( description $ zxbMailQuota $ zxbFeature $ zxbPrefLocale $ zxbPrefTimeZone ) )
objectclass ( zxb:2.4 NAME 'zxbDomain' AUXILIARY MAY ( zxbDomainName $ zxbAccountStatus $ zxbCOSId ) )
EOF
  cat >"$Z/slapd.conf" <<EOF
# Written by mail-stack.sh (slapd.conf style; use: slapcat -f $Z/slapd.conf)
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $Z/zxb.schema
pidfile $Z/run/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 268435456
suffix "$LDAP_BASE"
rootdn "$LDAP_BIND_DN"
rootpw $(slappasswd -h '{SSHA}' -s "$LDAP_BIND_PW")
directory $Z/ldap
index objectClass,uid,mail eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by anonymous auth
EOF
  chmod 600 "$Z/slapd.conf"
  [ -e "$Z/ldap/data.mdb" ] || slapadd -q -f "$Z/slapd.conf" <<EOF
dn: $LDAP_BASE
objectClass: dcObject
objectClass: organization
dc: example
o: Example backup test

dn: ou=domains,$LDAP_BASE
objectClass: organizationalUnit
ou: domains

dn: ou=cos,$LDAP_BASE
objectClass: organizationalUnit
ou: cos
EOF
}

write_radicale() {
  install -d -m 755 "$DAVDIR/collections" "$Z/radicale"
  # bcrypt cost 4: Radicale 3.1 re-verifies the hash on every request (cost 12 = ~0.4 s per request).
  bc() { $PY -c 'import bcrypt,sys;print(bcrypt.hashpw(sys.argv[1].encode(),bcrypt.gensalt(4)).decode())' "$1"; }
  local u; { echo "$DAV_ADMIN_USER:$(bc "$DAV_ADMIN_PASS")"; for u in $USERS; do echo "$u:$(bc "$(pw "$u")")"; done; } >"$Z/radicale/users"
  cat >"$Z/radicale/rights" <<EOF
[admin]
user: $DAV_ADMIN_USER
collection: .*
permissions: RrWw
[root]
user: .+
collection:
permissions: R
[principal]
user: .+
collection: {user}
permissions: RW
[collections]
user: .+
collection: {user}/[^/]+
permissions: rw
EOF
  cat >"$Z/radicale/config" <<EOF
[server]
hosts = 127.0.0.1:$DAV_PORT
[auth]
type = htpasswd
htpasswd_filename = $Z/radicale/users
htpasswd_encryption = bcrypt
[rights]
type = from_file
file = $Z/radicale/rights
[storage]
filesystem_folder = $DAVDIR/collections
[logging]
level = warning
EOF
}

env_lines() {
  local u s=""; for u in $USERS; do s+="$u:$(pw "$u") "; done
  cat <<EOF
export IMAP_HOST=127.0.0.1 IMAP_PORT=$IMAP_PORT IMAP_MASTER_USER=$MASTER_USER IMAP_MASTER_PASS=$MASTER_PASS IMAP_MASTER_SEPARATOR='*' LMTP_PORT=$LMTP_PORT
export LDAP_URL=ldap://127.0.0.1:$LDAP_PORT LDAP_BIND_DN=$LDAP_BIND_DN LDAP_BIND_PW=$LDAP_BIND_PW LDAP_BASE=$LDAP_BASE
export DAV_URL=http://127.0.0.1:$DAV_PORT DAV_ADMIN_USER=$DAV_ADMIN_USER DAV_ADMIN_PASS=$DAV_ADMIN_PASS
export ZXB_USERS='${s% }' ZXB_MAIL_EVENTS=$Z/log/mail-events.jsonl
export ZXB_VMAIL=$VMAIL ZXB_DOVECOT_USERS=$Z/dovecot/users
EOF
}

start() {
  install_pkgs
  install -d -m 755 "$Z" "$Z/run" "$Z/log"
  if ! pid_of dovecot >/dev/null; then
    write_dovecot; dovecot -c "$Z/dovecot/dovecot.conf" </dev/null >>"$Z/log/dovecot.log" 2>&1
  fi
  if ! pid_of slapd >/dev/null; then
    write_slapd; slapd -h "ldap://127.0.0.1:$LDAP_PORT/" -f "$Z/slapd.conf" </dev/null >>"$Z/log/slapd.log" 2>&1
  fi
  if ! pid_of radicale >/dev/null; then
    write_radicale
    setsid /usr/bin/radicale -C "$Z/radicale/config" </dev/null >>"$Z/log/radicale.log" 2>&1 &
    echo $! >"$Z/run/radicale.pid"
  fi
  wait_for dovecot && wait_for slapd && wait_for radicale
  log "dovecot $(dovecot --version | cut -d' ' -f1), slapd $(slapd -VV 2>&1 | grep -o 'slapd [0-9.]*' | cut -d' ' -f2), radicale $(/usr/bin/radicale --version) up"
  env_lines
}

stop() {  # TERM all three at once (each takes 1-3 s to exit), then wait; KILL after 10 s
  local s pid pids=()
  for s in radicale slapd dovecot; do
    if pid=$(pid_of $s); then kill -TERM "$pid"; pids+=("$s:$pid"); else log "$s not running"; fi
  done
  for s in "${pids[@]}"; do
    pid=${s#*:}
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { log "${s%:*} ($pid) ignored TERM; killing"; kill -KILL "$pid"; }
    log "${s%:*} ($pid) stopped"
  done
  rm -f "$Z/run/radicale.pid"
}

status() {
  local s pid rc=0
  for s in dovecot slapd radicale; do
    if pid=$(pid_of $s) && answers $s; then echo "$s: running, pid $pid"; else echo "$s: not running"; rc=3; fi
  done
  return $rc
}

seed() {
  eval "$(env_lines)"
  for s in dovecot slapd radicale; do answers $s || { log "$s is not running; run start first"; exit 1; }; done
  # LDAP: classes of service, domains, accounts, distribution lists (ldapadd -c: existing entries are kept).
  local u d l n=0 rc=0 ldif=""
  for d in alpha.test beta.test; do ldif+="
dn: ou=$d,ou=domains,$LDAP_BASE
objectClass: organizationalUnit
objectClass: zxbDomain
ou: $d
zxbDomainName: $d
zxbAccountStatus: active
zxbCOSId: cn=default,ou=cos,$LDAP_BASE
"; done
  for u in $USERS; do
    l=${u%@*} d=${u#*@} n=$((n + 1))
    ldif+="
dn: uid=$l,ou=$d,ou=domains,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: zxbAccount
uid: $l
cn: ${l^} Example
sn: Example
givenName: ${l^}
displayName: ${l^} Example
mail: $u
userPassword: $(slappasswd -h '{SSHA}' -s "$(pw "$u")")
preferredLanguage: en
zxbAccountStatus: active
zxbCOSId: cn=$([ $n = 1 ] && echo premium || echo default),ou=cos,$LDAP_BASE
zxbPrefLocale: en_US
zxbPrefTimeZone: Europe/Rome
zxbMailQuota: $((n * 1073741824))
zxbMailAlias: $l.alias@$d
"
  done
  ldif+="
dn: cn=default,ou=cos,$LDAP_BASE
objectClass: zxbCOS
cn: default
description: Default class of service
zxbMailQuota: 1073741824
zxbFeature: mail
zxbFeature: calendar
zxbFeature: contacts

dn: cn=premium,ou=cos,$LDAP_BASE
objectClass: zxbCOS
cn: premium
description: Premium class of service
zxbMailQuota: 10737418240
zxbFeature: mail
zxbFeature: calendar
zxbFeature: contacts
zxbFeature: tasks
zxbPrefTimeZone: Europe/Rome

dn: cn=team,ou=alpha.test,ou=domains,$LDAP_BASE
objectClass: groupOfNames
objectClass: zxbDistributionList
cn: team
mail: team@alpha.test
zxbMailAlias: staff@alpha.test
description: alpha.test team
member: uid=alice,ou=alpha.test,ou=domains,$LDAP_BASE
member: uid=bob,ou=alpha.test,ou=domains,$LDAP_BASE
member: uid=carol,ou=alpha.test,ou=domains,$LDAP_BASE

dn: cn=all,ou=beta.test,ou=domains,$LDAP_BASE
objectClass: groupOfNames
objectClass: zxbDistributionList
cn: all
mail: all@beta.test
member: uid=dave,ou=beta.test,ou=domains,$LDAP_BASE
member: uid=erin,ou=beta.test,ou=domains,$LDAP_BASE
member: cn=team,ou=alpha.test,ou=domains,$LDAP_BASE
"
  ldapadd -c -x -H "$LDAP_URL" -D "$LDAP_BIND_DN" -w "$LDAP_BIND_PW" >"$Z/log/seed-ldap.log" 2>&1 <<<"$ldif" || rc=$?
  [ $rc = 0 ] || [ $rc = 68 ] || { log "ldapadd failed (rc $rc), see $Z/log/seed-ldap.log"; exit 1; }
  log "ldap: $(ldapsearch -LLL -x -H "$LDAP_URL" -D "$LDAP_BIND_DN" -w "$LDAP_BIND_PW" -b "$LDAP_BASE" dn | grep -c '^dn:') entries"
  # Mail (IMAP APPEND + one LMTP delivery per user) and DAV collections (MKCOL/MKCALENDAR + PUT).
  $PY - <<'EOF'
import imaplib, smtplib, os, sys, time, urllib.request, urllib.error, base64
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timedelta, timezone
users = [u.split(':', 1) for u in os.environ['ZXB_USERS'].split()]
H, IP, LP, DAV = os.environ['IMAP_HOST'], int(os.environ['IMAP_PORT']), int(os.environ['LMTP_PORT']), os.environ['DAV_URL']
now = datetime.now(timezone.utc).replace(microsecond=0)
def msg(frm, to, subj, i, attach=False):
    m = EmailMessage()
    m['From'], m['To'], m['Subject'] = frm, to, subj
    m['Date'] = format_datetime(now - timedelta(days=i)); m['Message-ID'] = make_msgid(domain=frm.split('@')[1])
    m.set_content(f"Hello,\n\nthis is test message {i}: {subj}.\n\n-- \n{frm}\n")
    if attach: m.add_attachment(bytes(range(256)) * 8, maintype='application', subtype='octet-stream', filename='data.bin')
    return m.as_bytes()
total = 0
for k, (user, pw) in enumerate(users):
    peer = users[(k + 1) % len(users)][0]
    M = imaplib.IMAP4(H, IP); M.login(user, pw)
    if int(M.select('INBOX', readonly=True)[1][0]) > 0:
        print(f"imap: {user} already has mail, skipped", file=sys.stderr); M.logout(); continue
    with smtplib.LMTP(H, LP, local_hostname="localhost") as L:  # delivery path of a real MTA
        L.sendmail(peer, [user], msg(peer, user, 'Delivered via LMTP', 0))
    for box in ('Projects', 'Projects/2026'): M.create(box); M.subscribe(box)
    plan = [  # (mailbox, flags, subject, attachment)
        ('INBOX', r'(\Seen)', 'Weekly report', False),
        ('INBOX', r'(\Seen \Flagged)', 'Contract with attachment', True),
        ('INBOX', r'($label1 Urgent)', '=?UTF-8?B?' + base64.b64encode('Café façade – übung'.encode()).decode() + '?=', False),
        ('Sent', r'(\Seen)', 'Re: Weekly report', False),
        ('Sent', r'(\Seen \Answered)', 'Invitation', False),
        ('Projects', r'(\Seen)', 'Project overview', False),
        ('Projects/2026', r'(\Seen $label1)', 'Roadmap 2026', True),
        ('Projects/2026', r'()', 'Budget 2026', False),
        ('Trash', r'(\Seen \Deleted)', 'Old newsletter', False)]
    for i, (box, flags, subj, att) in enumerate(plan, 1):
        frm, to = (user, peer) if box == 'Sent' else (peer, user)
        typ, res = M.append(box, flags, imaplib.Time2Internaldate(time.time() - i * 86400), msg(frm, to, subj, i, att))
        assert typ == 'OK', (box, res)
    total += len(plan) + 1
    M.logout()
print(f"imap: appended/delivered {total} messages", file=sys.stderr)
def dav(method, path, user, pw, body=b'', ctype='application/xml; charset=utf-8'):
    r = urllib.request.Request(DAV + path, data=body, method=method, headers={
        'Authorization': 'Basic ' + base64.b64encode(f'{user}:{pw}'.encode()).decode(), 'Content-Type': ctype})
    try: return urllib.request.urlopen(r).status
    except urllib.error.HTTPError as e:
        if method in ('MKCOL', 'MKCALENDAR') and e.code in (405, 409): return e.code  # already exists
        raise
for k, (user, pw) in enumerate(users):
    loc = user.split('@')[0]; peer = users[(k + 1) % len(users)][0]; base = f'/{user}/'
    dav('PROPFIND', base, user, pw)  # Radicale creates the principal collection on first access
    dav('MKCOL', base + 'contacts/', user, pw, b'<?xml version="1.0"?><mkcol xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
        b'<set><prop><resourcetype><collection/><C:addressbook/></resourcetype><displayname>Contacts</displayname></prop></set></mkcol>')
    dav('MKCALENDAR', base + 'calendar/', user, pw, b'<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        b'<D:set><D:prop><D:displayname>Calendar</D:displayname><C:supported-calendar-component-set><C:comp name="VEVENT"/>'
        b'<C:comp name="VTODO"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>')
    c1, c2 = f'{loc}-c1', f'{loc}-c2'
    cards = {
        c1: f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{c1}\r\nFN:{peer.split('@')[0].title()} Example\r\nN:Example;{peer.split('@')[0].title()};;;\r\nEMAIL;TYPE=INTERNET:{peer}\r\nTEL;TYPE=CELL:+39 055 000 0{k}1\r\nORG:Example\r\nEND:VCARD\r\n",
        c2: f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{c2}\r\nFN:Jörg Außen\r\nN:Außen;Jörg;;;\r\nEMAIL;TYPE=INTERNET:joerg@external.example\r\nNOTE:External contact\r\nEND:VCARD\r\n",
        f'{loc}-g1': f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{loc}-g1\r\nFN:Project group\r\nN:Project group;;;;\r\nX-ADDRESSBOOKSERVER-KIND:group\r\nX-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{c1}\r\nX-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{c2}\r\nEND:VCARD\r\n",
        f'{loc}-g2': f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{loc}-g2\r\nKIND:group\r\nFN:Friends (vCard 4)\r\nMEMBER:urn:uuid:{c1}\r\nEND:VCARD\r\n"}
    for uid, card in cards.items():
        dav('PUT', f'{base}contacts/{uid}.vcf', user, pw, card.encode(), 'text/vcard; charset=utf-8')
    d = (now + timedelta(days=3)).strftime('%Y%m%d'); st = now.strftime('%Y%m%dT%H%M%SZ')
    ics = {
        f'{loc}-ev1': f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//zxb//seed//EN\r\nBEGIN:VEVENT\r\nUID:{loc}-ev1\r\nDTSTAMP:{st}\r\nDTSTART:{d}T090000Z\r\nDTEND:{d}T100000Z\r\nSUMMARY:Weekly sync\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nORGANIZER:mailto:{user}\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{peer}\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:Reminder\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        f'{loc}-td1': f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//zxb//seed//EN\r\nBEGIN:VTODO\r\nUID:{loc}-td1\r\nDTSTAMP:{st}\r\nDUE;VALUE=DATE:{d}\r\nSUMMARY:Prepare backup report\r\nPRIORITY:1\r\nSTATUS:NEEDS-ACTION\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"}
    for uid, cal in ics.items():
        dav('PUT', f'{base}calendar/{uid}.ics', user, pw, cal.encode(), 'text/calendar; charset=utf-8')
print(f"dav: {len(users)} users x (address book with 4 vCards + calendar with VEVENT and VTODO)", file=sys.stderr)
EOF
}

case ${1:-} in
  start) start ;; stop) stop ;; status) status ;; seed) seed ;;
  *) echo "usage: $0 start|seed|stop|status" >&2; exit 2 ;;
esac
