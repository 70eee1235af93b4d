# hotline: the two commands of the quick start are `make demo` and `make test`.
# Python packages go into a virtual environment of the project's own (.venv): Debian's
# python3 refuses a system-wide pip install (PEP 668).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install system-deps test-deps test-services demo test unit integration lint bench mutation prompts clean

$(PY):
	python3 -m venv $(VENV)

# The engine and its tools into .venv; as root also /usr/local/bin/hotline, so that README's
# `hotline ...` commands work from any folder.
install: $(PY)
	$(PIP) install -q -e '.[test]'
	@if [ -w /usr/local/bin ]; then ln -sfn "$(abspath $(VENV))/bin/hotline" /usr/local/bin/hotline; fi

# Debian packages the sandbox needs (run as root on a fresh machine); the tests also need
# Prometheus's binaries.
system-deps:
	@bash .ci/packages.sh

test-deps:
	@bash .ci/packages.sh --tests

# The PostgreSQL the integration tests use (the demo and the engine's default need none).
test-services:
	@bash .ci/services.sh

demo: system-deps install
	$(VENV)/bin/hotline demo

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit:
	$(PY) -m pytest tests/unit -q

integration:
	$(PY) -m pytest tests/integration -q

# The whole suite: lint, type check, unit tests and the real-Asterisk integration tests.
test: test-deps test-services install lint
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
	$(VENV)/bin/mutmut run
	$(VENV)/bin/mutmut export-cicd-stats
	@$(VENV)/bin/mutmut results
	@$(PY) -c 'import json; s = json.load(open("mutants/mutmut-cicd-stats.json")); \
	  killed = s["killed"] + s["timeout"]; \
	  print("mutation score of acd/: %d/%d killed (%.1f%%); %d survived, %d reached by no test" \
	        % (killed, s["total"], 100.0 * killed / s["total"], s["survived"], s["no_tests"]))'

# Re-render the IVR's voice prompts (ivr/prompt_texts.yaml) into asterisk-conf/sounds/zh and en
# with espeak-ng and sox; the result is committed, so only a changed text needs this.
prompts: install
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null || { \
	  echo "make prompts needs espeak-ng and sox: apt-get install espeak-ng sox (as root; or make test-deps)" >&2; \
	  exit 1; }
	$(PY) -m ivr.prompts build
	$(PY) -m ivr.prompts check

bench: system-deps install
	$(PY) bench/dispatch_latency.py

clean:
	-$(VENV)/bin/hotline sandbox down
