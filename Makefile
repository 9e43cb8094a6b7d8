# neurodeploy: two commands from a fresh clone.
#   make demo   set up .venv, train (or reuse) the demo Spikingformer, export, check, lower, simulate, report
#   make test   set up .venv (with the vendor tools used as ground truth), run the test suite
# Also: make install (set-up only), make bench (benchmarks, installs spikingjelly), make clean.
#
# Set-up is idempotent: it runs pip only when pyproject.toml or this Makefile changed since the last
# successful set-up (stamp file .venv/.installed-<hash>).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
VPY    := $(VENV)/bin/python
PIP    := $(VPY) -m pip --disable-pip-version-check
ND     := $(VENV)/bin/neurodeploy

SETUP_HASH := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
STAMP      := $(VENV)/.installed-$(SETUP_HASH)

DEMO_OUT   := demo-out
DEMO_MODEL := $(DEMO_OUT)/spikingformer-digits.pt

# digits test images run through Lava in the demo (one chained Lava run; ~3 samples/s on 2 cores)
LAVA_SAMPLES ?= 100

.PHONY: help install demo test bench clean distclean chromium

help:
	@echo "make demo    set up .venv, train (or reuse) the demo model, export/check/lower/simulate/report it"
	@echo "make test    set up .venv and run the test suite"
	@echo "make install set up .venv only (Python 3.11, CPU torch, neurodeploy editable, Lava)"
	@echo "make bench   run benchmarks/*.py (installs the benchmark-only spikingjelly 0.0.0.0.14)"
	@echo "make clean   remove demo-out/ and build/cache files (make distclean also removes .venv)"

install: $(STAMP)

$(STAMP):
	@echo "== setting up $(VENV) with $(PYTHON)"
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@# a current pip, and setuptools/wheel in the venv itself (tests build a wheel without isolation)
	$(PIP) install --upgrade pip 'setuptools>=68' wheel
	@# torch first, pinned, so that nothing later pulls a different torch build from elsewhere
	$(PIP) install -c constraints.txt torch==2.14.1 torchvision==0.29.1 'numpy<2'
	$(PIP) install -c constraints.txt -e '.[lava,frameworks,test,vendors]'
	@# sinabs (Speck ground truth) pins nir<=1.0.4 and samna (no cp311 build): its code runs unchanged with nir 1.0.8
	$(PIP) install -c constraints.txt sinabs==3.1.3 --no-deps
	@# lava-nc 0.10.0 / lava-dl 0.6.0 declare Python <3.11 and pin old torch: install without their
	@# metadata; their real runtime dependencies come from the [lava] extra above, and
	@# neurodeploy.lava_compat fixes the one Python 3.11 import bug when Lava is imported through us.
	$(PIP) install lava-nc==0.10.0 lava-dl==0.6.0 --no-deps --ignore-requires-python
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "== $(VENV) ready"

test: $(STAMP) chromium
	$(VPY) -m pytest -q

# Debian's Chromium renders the HTML report in tests/test_report_html.py (headless, no network)
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	@mkdir -p $(DEMO_OUT)
	@echo "== [1/6] train (or reuse) the demo Spikingformer on scikit-learn digits"
	$(ND) train --arch spikingformer-digits -o $(DEMO_MODEL) --reuse
	@echo "== [2/6] export to NIR and deploy for Loihi 2 (one lowering: network, summary, fidelity, chip fit, report)"
	$(ND) export $(DEMO_MODEL) -o $(DEMO_OUT)/deploy --target loihi2
	@echo "== [3/6] spike-purity check (encoder allowed, readout folded into accumulates)"
	$(ND) check $(DEMO_MODEL) --allow encoder --fold-readout
	@echo "== [4/6] the exported Loihi 2 network on our fast engine: all 360 digits test images"
	$(ND) simulate $(DEMO_OUT)/deploy --target loihi2 --backend fast
	@echo "== [5/6] the exported Loihi 2 network in Lava (Loihi2SimCfg fixed_pt): first $(LAVA_SAMPLES) test images"
	$(ND) simulate $(DEMO_OUT)/deploy --target loihi2 --backend lava --limit $(LAVA_SAMPLES)
	@echo "== [6/6] deployment report"
	$(ND) report $(DEMO_MODEL) --target loihi2 --target speck --format html -o $(DEMO_OUT)/report.html
	@echo "== demo artifacts in $(CURDIR)/$(DEMO_OUT):"
	@ls -l $(DEMO_OUT) $(DEMO_OUT)/deploy
	@echo "== report: $(CURDIR)/$(DEMO_OUT)/report.html (also $(DEMO_OUT)/deploy/report.{md,json,html})"

bench: $(STAMP)
	@$(VPY) -c "import spikingjelly" >/dev/null 2>&1 || $(PIP) install spikingjelly==0.0.0.0.14 --no-deps
	@for f in benchmarks/*.py; do \
		echo "== $$f"; \
		$(VPY) $$f; \
	done

clean:
	rm -rf $(DEMO_OUT) build dist .pytest_cache *.egg-info
	find . \( -path ./$(VENV) -o -path ./.git \) -prune -o -name __pycache__ -type d -prune -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV)
