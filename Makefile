# mailhop: everything a fresh Debian machine needs, from two targets.
#   make serve   create .venv, install mailhop, run it on its embedded defaults
#   make test    install what the tests need (Debian packages included), run lint, types, tests
#   make fuzz    a long hypothesis run of whole SMTP sessions (docs/operations.md, "Fuzzing")
#   make faults  the fault checker's long run: kill -9, SIGSTOP, PostgreSQL down, disk full,
#                SIGTERM under load (docs/operations.md, "Proof under faults"); make test runs 2 cycles
#   make bench   the benchmarks: throughput against Postfix, memory under big messages, routing, a deep
#                queue (docs/performance.md)

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# Debian packages the tests use as real peers: Postfix (smart host), swaks (client; Net::SSLeay for
# its STARTTLS, only a Recommends of swaks), dnsmasq (DNS), Knot (authoritative DNS that signs the
# DANE test zones) and unbound (the validating resolver), PostgreSQL (the cluster store), Chromium
# (the console, driven by Playwright), OpenDKIM (an independent DKIM verifier).
DEBIAN_TEST_PACKAGES = postfix swaks libnet-ssleay-perl dnsmasq-base postgresql chromium opendkim opendkim-tools \
                       knot unbound
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# make bench BENCH_ARGS=--quick        a reduced throughput run (2 rounds, 2000 messages, 4 KiB, 20 sessions)
# make bench QUEUE_ARGS="--messages 100000"
BENCH_ARGS ?=
ROUTING_ARGS ?=
# make bench TLS_ARGS="--rounds 1"      DANE and MTA-STS on against off (its policy server binds 127.0.0.1:443)
TLS_ARGS ?=
MEMORY_ARGS ?=
QUEUE_ARGS ?=

# make fuzz FUZZ_EXAMPLES=1000000     hypothesis-driven SMTP sessions against the server (and hostile
#                                     replies against the client); make test runs 150 of each
FUZZ_EXAMPLES ?= 100000

# make faults FAULTS_ARGS="--cycles 5 --faults kill-9,disk-full"
FAULTS_ARGS ?= --cycles 20

.PHONY: serve test lint typecheck unit deps debian-deps bench fuzz faults clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,fast]'
	touch $@

deps: $(STAMP)

serve: $(STAMP)
	$(BIN)/mailhop serve

debian-deps:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | $(SUDO) debconf-set-selections; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) debian-deps lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/contract $(PYTEST_ARGS)

# Throughput needs root (Postfix's master process); every instance lives under a temporary
# directory and is stopped at the end. The full run takes a while: see docs/performance.md.
bench: $(STAMP) debian-deps
	$(SUDO) $(BIN)/python bench/run.py $(BENCH_ARGS)
	$(SUDO) $(BIN)/python bench/tls.py $(TLS_ARGS)
	$(BIN)/python bench/memory.py $(MEMORY_ARGS)
	$(BIN)/python bench/routing.py $(ROUTING_ARGS)
	$(BIN)/python bench/queue_scale.py $(QUEUE_ARGS)

fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider tests/unit/test_session_fuzz.py \
	  --hypothesis-show-statistics

# Root (or password-less sudo) for the disk-full fault's tmpfs; PostgreSQL from debian-deps.
faults: $(STAMP) debian-deps
	$(BIN)/python -m tests.faults.checker $(FAULTS_ARGS) --markdown faults-last.md

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
