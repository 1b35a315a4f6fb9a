#!/bin/sh
# keepalived's notify script for a pair of ftp-proxy(8) firewalls: keeps
# conntrackd's caches in step with the VRRP state (as conntrackd's own
# primary-backup.sh does), then appends the state to a file.
#
#   notify "/path/notify.sh CONNTRACKD_CONF STATE_FILE"
#
# keepalived appends: INSTANCE|GROUP NAME STATE PRIORITY.
#
# STATE_FILE gets one line per call: STATE, the time the call began and the
# time it ended (seconds since the epoch): the regress lab reads when this
# host became master and when the copied states were in its kernel.
conf=$1 file=$2 state=$5
begin=$(date +%s.%N)
ct() { conntrackd -C "$conf" "$@" || echo "notify.sh: conntrackd $* failed" >&2; }
case $state in
MASTER)
	ct -c	# write the other firewall's states into the kernel
	ct -f	# empty both caches
	ct -R	# refill the internal cache from the kernel
	ct -B	# and send it all to the other firewall
	;;
BACKUP)
	ct -t	# our own kernel states are served elsewhere now: let them age out
	ct -n	# ask the master for all of its states
	;;
FAULT)
	ct -t
	;;
esac
echo "$state $begin $(date +%s.%N)" >>"$file"
