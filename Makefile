# voiceloop: the two commands.
#   make demo   set up everything on a fresh machine, build the demo corpus, run the retrain flow
#   make test   set up everything and run the test suite (what CI runs through .ci/run)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Label Studio's own virtualenv (its pins differ from the project's); the tests run it from here
LS_VENV ?= .venv-labelstudio
export PATH := $(abspath $(BIN)):$(PATH)
DEMO_CALLS ?= 120
# 11 labelled turns per intent: >= 10 survive even if validation quarantines a turn
GOLDEN_PER_INTENT ?= 11

.PHONY: demo test setup system-packages studio-venv lint corpus clean-state infra

demo: setup corpus
	$(BIN)/voiceloop retrain
	$(BIN)/voiceloop status

# Label Studio's install (pip, about a minute) and the static checks (mypy, about a minute on a fresh clone) each
# keep one core busy: they run side by side, each one's output printed whole when it ends.
test: setup
	$(MAKE) --no-print-directory -j2 --output-sync=target studio-venv lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

setup: system-packages $(VENV)/.installed

# espeak-ng and sox synthesise and degrade the demo speech; PostgreSQL serves the tests of the
# PostgreSQL audit path (started by the tests on 127.0.0.1); Alertmanager, the Pushgateway and promtool
# (prometheus) serve monitoring's alerts and metrics, run by voiceloop on 127.0.0.1 only: a policy-rc.d
# keeps Debian from starting its own services (listening on every interface) during the install. Chromium and
# its driver (at the fixed paths /usr/bin/chromium, /usr/bin/chromedriver that selenium is given: no driver
# download) serve the headless check of the QA review page in Label Studio (tests/test_qa_page.py).
# Installed only when missing.
system-packages:
	@missing=""; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v sox >/dev/null || missing="$$missing sox libsox-fmt-all"; \
	{ command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing="$$missing chromium chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d.voiceloop >/dev/null; \
	  $$SUDO chmod +x /usr/sbin/policy-rc.d.voiceloop; \
	  [ -e /usr/sbin/policy-rc.d ] || $$SUDO ln -s /usr/sbin/policy-rc.d.voiceloop /usr/sbin/policy-rc.d; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	  status=$$?; \
	  [ "$$(readlink /usr/sbin/policy-rc.d)" = /usr/sbin/policy-rc.d.voiceloop ] && $$SUDO rm -f /usr/sbin/policy-rc.d; \
	  $$SUDO rm -f /usr/sbin/policy-rc.d.voiceloop; \
	  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then \
	    $$SUDO systemctl disable --now prometheus prometheus-alertmanager prometheus-pushgateway 2>/dev/null; \
	  fi; \
	  exit $$status; \
	fi

# The constraints file pins every transitive version that resolved together (see STACK notes in README).
# setuptools' "Editable installation" notice is advice for this repository's authors (a folder named like a
# package shadows it), not for whoever installs it: silenced, so the install prints nothing when it works.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

# Label Studio (where the QA team reviews sampled calls) needs Django 5.2 and numpy 2.2: it gets a virtualenv of
# its own, made here for the tests (LocalLabelStudio.ensure_installed makes one where voiceloop runs it).
# qa/studio.py names the version and installs it (again when the version there changes); a no-op when the venv
# already holds it.
studio-venv: $(LS_VENV)/.installed

$(LS_VENV)/.installed: qa/studio.py | $(VENV)/.installed
	$(BIN)/python -c 'import sys; from qa.studio import install_studio; install_studio(sys.argv[1])' $(LS_VENV)
	touch $@

corpus: data/calls/.built data/golden/.built

data/calls/.built: $(VENV)/.installed
	$(BIN)/voiceloop simulate-calls --n $(DEMO_CALLS) --out data/calls --seed 0
	touch $@

data/golden/.built: $(VENV)/.installed
	$(BIN)/voiceloop simulate-calls --split golden --per-intent $(GOLDEN_PER_INTENT) --out data/golden --seed 0
	touch $@

# The scale topology as separate processes on 127.0.0.1 (a moto S3 server, PostgreSQL + `mlflow server`, a
# `dask scheduler` and two single-thread workers) and one `voiceloop retrain` of the demo corpus, ASR on, through
# it: figures as JSON lines, every process stopped after. A benchmark and a manual check, not part of `make test`
# (docs/scale.md "The full topology by hand"). INFRA_ARGS="--tiny --calls DIR --golden DIR" runs another corpus
# with the suite's tiny settings (then the demo corpus is not built); "--up-only" starts and stops the services.
infra: setup $(if $(INFRA_ARGS),,corpus)
	$(BIN)/python benchmarks/infra_topology.py $(INFRA_ARGS)

clean-state:
	rm -rf .voiceloop
