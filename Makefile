# hotline: the two commands of the quick start are `make demo` and `make test`.
PY ?= python3
PIP ?= $(PY) -m pip

.PHONY: install system-deps demo test unit integration lint bench clean

install:
	$(PIP) install -q -e '.[test]'

# Debian packages the sandbox and the tests need (run as root on a fresh machine).
system-deps:
	@command -v debootstrap >/dev/null && command -v prometheus >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap prometheus >/dev/null)
	@bash .ci/services.sh

demo: system-deps install
	hotline demo

lint:
	ruff check .
	mypy

unit:
	$(PY) -m pytest tests/unit -q

integration:
	$(PY) -m pytest tests/integration -q

# The whole suite: lint, type check, unit tests and the real-Asterisk integration tests.
test: system-deps install lint
	$(PY) -m pytest -q

bench: system-deps install
	$(PY) bench/dispatch_latency.py

clean:
	-hotline sandbox down
