# hotline: the two commands of the quick start are `make demo` and `make test`.
PY ?= python3
PIP ?= $(PY) -m pip

.PHONY: install system-deps demo test unit integration lint bench mutation clean

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

# Mutation testing of the routing core, on demand only (`make test` and CI never run it):
# mutmut (pinned in the `mutation` extra) mutates every function of acd/ and runs each
# mutant against the unit tests that reach it, in a copy under mutants/ (configuration:
# [tool.mutmut] in pyproject.toml). Prints the score and lists every mutant no test killed;
# `mutmut show NAME` prints one. Always from scratch (mutmut keeps an old verdict when only
# the tests changed): about 6 minutes on 2 cores.
mutation:
	$(PIP) install -q -e '.[test,mutation]'
	rm -rf mutants
	mutmut run
	mutmut export-cicd-stats
	@mutmut results
	@$(PY) -c 'import json; s = json.load(open("mutants/mutmut-cicd-stats.json")); \
	  killed = s["killed"] + s["timeout"]; \
	  print("mutation score of acd/: %d/%d killed (%.1f%%); %d survived, %d reached by no test" \
	        % (killed, s["total"], 100.0 * killed / s["total"], s["survived"], s["no_tests"]))'

bench: system-deps install
	$(PY) bench/dispatch_latency.py

clean:
	-hotline sandbox down
