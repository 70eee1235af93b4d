"""Dev and test tooling, kept apart from the runtime: the Asterisk sandbox (a Debian sid
chroot), the SIPp harness and its scenarios, the demo, and what tests and benchmarks share.

The runtime packages (acd, cti, config, metrics, recorder, tickets) never import this
package; `hotline sandbox` and `hotline demo` import it lazily, inside the command.
"""
