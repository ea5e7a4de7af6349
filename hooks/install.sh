#!/bin/sh
# wgkill without a distribution package: a virtualenv in PREFIX, links on
# wg-quick@.service's PATH (SBINDIR), manual pages (MANDIR), and the units of
# hooks/ with ExecStart pointing at SBINDIR, enabled as `systemctl enable` would
# (the services; the textfile timer is installed disabled, as the package ships it).
# Every path it creates is recorded in PREFIX/installed-files; `uninstall`
# removes exactly those, then PREFIX, and never /var/lib/wgkill (an engaged
# block and its state stay). `units`/`remove-units` alone serve pipx installs.
#
#   make install | make uninstall          (PREFIX, SBINDIR, MANDIR, UNITDIR, PYTHON, PIP_ARGS)
set -eu

: "${PREFIX:=/opt/wgkill}" "${SBINDIR:=/usr/local/sbin}" "${MANDIR:=/usr/local/share/man}"
: "${UNITDIR:=/etc/systemd/system}" "${PYTHON:=/usr/bin/python3}" "${PIP_ARGS:=}"
SRC=$(cd "$(dirname "$0")/.." && pwd)
MANIFEST=$PREFIX/installed-files
STATE_DIR=${WGKILL_STATE_DIR:-/var/lib/wgkill}  # as wgkill.state reads it
RECORD=

say() { echo "wgkill: $*" >&2; }
die() { say "$*"; exit 1; }
record() { [ -z "$RECORD" ] || echo "$1" >>"$RECORD"; }

make_dir() {  # like mkdir -p, recording each directory it creates
	[ -d "$1" ] && return 0
	make_dir "$(dirname "$1")"
	mkdir "$1"
	record "$1"
}

link() {  # link SOURCE DEST: refuses to replace anything that is not already this link
	if [ -e "$2" ] || [ -L "$2" ]; then
		[ "$(readlink "$2")" = "$1" ] || die "$2 exists and is not a link to $1: refusing to replace it"
		rm -f "$2"
	fi
	ln -s "$1" "$2"
	record "$2"
}

reload_systemd() {
	if [ -d /run/systemd/system ] && [ "$UNITDIR" = /etc/systemd/system ]; then
		systemctl daemon-reload
	fi
}

install_units() {  # services with an [Install] section enabled; timers shipped disabled (opt-in)
	make_dir "$UNITDIR"
	for unit in "$SRC"/hooks/*.service "$SRC"/hooks/*.timer; do
		name=${unit##*/}
		sed "s|^ExecStart=/usr/sbin/|ExecStart=$SBINDIR/|" "$unit" >"$UNITDIR/.$name.new"
		mv "$UNITDIR/.$name.new" "$UNITDIR/$name"
		record "$UNITDIR/$name"
		case $name in *.timer)
			echo "[#] $UNITDIR/$name, not enabled (systemctl enable --now $name)" >&2
			continue ;;
		esac
		for target in $(sed -n 's/^WantedBy=//p' "$unit"); do
			make_dir "$UNITDIR/$target.wants"
			link "$UNITDIR/$name" "$UNITDIR/$target.wants/$name"
		done
		echo "[#] $UNITDIR/$name (ExecStart=$SBINDIR/...)$(grep -q '^WantedBy=' "$unit" && echo ', enabled')" >&2
	done
	reload_systemd
}

remove_units() {  # by name: the units hooks/ ships and the links enabling them
	for unit in "$SRC"/hooks/*.service "$SRC"/hooks/*.timer; do
		name=${unit##*/}
		for wanted in "$UNITDIR"/*.wants/"$name"; do
			[ -L "$wanted" ] && rm -f "$wanted"
		done
		rm -f "$UNITDIR/$name"
	done
	reload_systemd
}

engaged_note() {
	ifaces=$(for s in "$STATE_DIR"/*.json; do [ -f "$s" ] && basename "$s" .json; done | tr '\n' ' ' |
		sed 's/ $//')
	[ -z "$ifaces" ] && return 0
	say "a kill switch is still engaged for: $ifaces"
	say "uninstalling does not lift it: its firewall rules stay, and its state in $STATE_DIR;"
	say "install wgkill again and run \`wgkill-release IFACE\` to lift it"
}

remove_files() {  # the files and links in list $1
	echo "$1" | while IFS= read -r path; do
		if [ -n "$path" ] && { [ -L "$path" ] || [ ! -d "$path" ]; }; then rm -f "$path"; fi
	done
}

remove_dirs() {  # the directories in list $1 that are empty now, deepest first
	echo "$1" | while IFS= read -r path; do
		[ -n "$path" ] && [ -d "$path" ] && [ ! -L "$path" ] && echo "$path"
	done | sort -r | while IFS= read -r dir; do
		rmdir "$dir" 2>/dev/null || [ -z "$2" ] || say "kept $dir: not empty"
	done
}

missing_ancestors() {  # $1 and each parent of it that does not exist yet, outermost first
	dir=$1 list=
	while [ ! -e "$dir" ]; do
		list="$dir${list:+
$list}"
		dir=$(dirname "$dir")
	done
	echo "$list"
}

install() {
	if command -v dpkg-query >/dev/null && dpkg-query -W -f='${Status}' wgkill 2>/dev/null | grep -q ' installed$'; then
		die "the Debian package wgkill is installed: use it, or remove it first (one copy on the PATH, one boot unit)"
	fi
	if [ -e "$PREFIX" ] && [ ! -f "$MANIFEST" ]; then
		die "$PREFIX exists and was not made by make install: refusing"
	fi
	parents=$(missing_ancestors "$(dirname "$PREFIX")")
	if [ -f "$MANIFEST" ]; then  # a re-install: links, pages and units are made anew, the venv reused
		made=$(cat "$MANIFEST")
		remove_files "$made"
		remove_dirs "$made" ""
		parents=$(echo "$made" | while IFS= read -r d; do
			case $PREFIX in "$d"/*) echo "$d" ;; esac
		done)
	fi
	mkdir -p "$PREFIX"
	echo "$parents" | grep . >"$MANIFEST" || :  # first: uninstall can undo a half-finished install
	[ -x "$PREFIX/bin/python" ] || "$PYTHON" -m venv "$PREFIX"
	RECORD=$MANIFEST
	# shellcheck disable=SC2086  # PIP_ARGS is a list of words
	(cd / && "$PREFIX/bin/pip" install -q --disable-pip-version-check --force-reinstall $PIP_ARGS "$SRC")
	"$PREFIX/bin/python" -m wgkill.cli.manpage "$PREFIX/share/man/man8" >/dev/null
	make_dir "$SBINDIR"
	for command in "$PREFIX"/bin/wgkill-*; do
		link "$command" "$SBINDIR/${command##*/}"
	done
	make_dir "$MANDIR/man8"
	for page in "$PREFIX"/share/man/man8/*.8; do
		link "$page" "$MANDIR/man8/${page##*/}"
	done
	install_units
	echo "[#] $PREFIX (virtualenv on $PYTHON), $SBINDIR/wgkill-*, $MANDIR/man8/wgkill-*.8" >&2
}

uninstall() {
	[ -f "$MANIFEST" ] || { say "nothing installed by make install in $PREFIX"; return 0; }
	engaged_note
	made=$(cat "$MANIFEST")
	remove_files "$made"
	reload_systemd
	rm -rf "$PREFIX"
	remove_dirs "$made" say
	echo "[#] removed $PREFIX and every link, page and unit it had put in place" >&2
}

case "${1:-}" in
install) install ;;
uninstall) uninstall ;;
units) install_units ;;
remove-units) remove_units ;;
*) die "usage: $0 install|uninstall|units|remove-units" ;;
esac
