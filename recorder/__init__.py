"""Recordings: MixMonitor is started by the dialplan (asterisk-conf/extensions.conf,
context hotline-answered); this package knows the file layout and checks the files."""
