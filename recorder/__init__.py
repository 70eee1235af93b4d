"""Recordings: MixMonitor is started by the dialplan (asterisk-conf/extensions.conf,
context hotline-answered).

Layout: <recordings.dir>/YYYY/MM/DD/<Linkedid>.wav (UTC date of the answer), written
by MixMonitor on the agent's leg. Asterisk runs with umask 027, so files are 0640
in 0750 directories: never world-readable.
"""
