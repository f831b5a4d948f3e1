#!/bin/sh
# dns-sandbox.sh CMD [ARGS...]: runs CMD in private network, mount and UTS
# namespaces where name resolution can only reach 127.0.0.1:
#
#   - network: a new namespace whose only interface is lo (brought up), so
#     no packet can leave it; 127.0.0.1:53 is free for a stub nameserver;
#   - /etc/resolv.conf: "nameserver 127.0.0.1" and
#     "options timeout:3 attempts:1" (bind-mounted over the real one, in
#     the private mount namespace only);
#   - /etc/nsswitch.conf: "hosts: files dns" (likewise), so glibc asks no
#     other service (mdns, systemd-resolved, myhostname);
#   - hostname "gtsandbox" (no dot: neither glibc nor Go's resolver adds a
#     search domain taken from the host name).
#
# Needs root (or unprivileged user namespaces: not used here). The files
# are written to a temp dir, bind-mounted, then deleted: the mounts keep
# them alive and nothing is left behind. It then execs CMD, so CMD's exit
# status and signals are the script's. Checks, then refuses to exec, if the
# namespace has any interface but lo or resolv.conf names another server.
#
# Verified by hand: `dns-sandbox.sh ip -o link` lists only lo;
# `dns-sandbox.sh getent hosts h1.gotracer.test` fails (exit 2) after 3 s
# while a stub on 127.0.0.1:53 counts its queries.
set -eu

if [ "${GT_DNS_SANDBOX_INNER:-}" != 1 ]; then
	if [ "$#" -eq 0 ]; then
		echo "usage: $0 CMD [ARGS...]" >&2
		exit 64
	fi
	GT_DNS_SANDBOX_INNER=1 exec unshare --mount --net --uts --propagation private -- /bin/sh "$0" "$@"
fi
unset GT_DNS_SANDBOX_INNER

ip link set lo up
hostname gtsandbox

tmp=$(mktemp -d /tmp/dns-sandbox.XXXXXX)
printf 'nameserver 127.0.0.1\noptions timeout:3 attempts:1\n' >"$tmp/resolv.conf"
printf 'hosts: files dns\n' >"$tmp/nsswitch.conf"
mount --bind "$tmp/resolv.conf" /etc/resolv.conf
mount --bind "$tmp/nsswitch.conf" /etc/nsswitch.conf
rm -r "$tmp"

# Refuse to run anything that could reach a real nameserver.
links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
if [ "$links" != "lo " ]; then
	echo "dns-sandbox: interfaces other than lo: $links" >&2
	exit 70
fi
if grep '^nameserver' /etc/resolv.conf | grep -qv '^nameserver 127\.0\.0\.1$'; then
	echo "dns-sandbox: /etc/resolv.conf names another server" >&2
	exit 70
fi

exec "$@"
