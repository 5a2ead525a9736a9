# Landslide mapping for QGIS: set-up, tests, packaging.
# `make setup && make test` on a fresh Debian 12 machine (as root) does everything.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGIN := landslide_qgis
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
DIST := dist
# QGIS profile that `make install` writes into; override with PROFILE=... or QGIS_PROFILE_DIR=...
PROFILE ?= default
QGIS_PROFILE_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/$(PROFILE)
APT_PACKAGES := qgis python3-qgis python3-rasterio python3-h5py python3-venv python3-pip xvfb xauth

export HF_HUB_OFFLINE := 1
export QT_QPA_PLATFORM ?= offscreen

.PHONY: setup setup-ray apt venv test lint format package install demo bench bench-batch clean

setup: apt venv

apt:
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then echo "apt packages present"; else \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); fi

venv:
	test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt
	# s2cloudless only for its LightGBM model file: its downloader's Sentinel Hub client and OpenCV are not used
	$(PY) -m pip install -q --no-deps -c constraints.txt s2cloudless
	$(PY) -c "import qgis.core, rasterio, h5py, torch, numpy; print('venv ok: torch', torch.__version__, 'numpy', numpy.__version__, 'rasterio', rasterio.__version__, 'h5py', h5py.__version__)"

# Ray, an optional dependency of its own (batch --executor ray); pinned in constraints.txt
setup-ray: venv
	$(PY) -m pip install -q -c constraints.txt ray
	$(PY) -c "import ray; print('ray', ray.__version__)"

test:
	$(PY) -m pytest

# ruff (style, complexity cap), the import contracts between the packages, and types in the engine.
lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

format:
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# The plugin zip, by hand rather than with qgis-plugin-ci: the engine lives beside the plugin and is bundled into it,
# metadata.txt stays the one version source (no git tag rewriting), and nothing beyond the standard library is needed.
package:
	rm -rf $(DIST)/build && mkdir -p $(DIST)/build/$(PLUGIN)
	cp -r $(PLUGIN)/. $(DIST)/build/$(PLUGIN)/
	cp -r landslide_engine $(DIST)/build/$(PLUGIN)/landslide_engine
	cp metadata.txt LICENSE CHANGELOG.md $(DIST)/build/$(PLUGIN)/
	find $(DIST)/build -name '__pycache__' -prune -exec rm -rf {} +
	cd $(DIST)/build && rm -f ../$(PLUGIN)-$(VERSION).zip && /usr/bin/python3 -m zipfile -c ../$(PLUGIN)-$(VERSION).zip $(PLUGIN)
	@echo "$(DIST)/$(PLUGIN)-$(VERSION).zip"

install: package
	mkdir -p "$(QGIS_PROFILE_DIR)/python/plugins"
	rm -rf "$(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN)"
	cp -r $(DIST)/build/$(PLUGIN) "$(QGIS_PROFILE_DIR)/python/plugins/"
	@echo "installed into $(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN)"

demo:
	$(PY) -m landslide_engine demo --out $(DIST)/demo

bench:
	$(PY) bench/run.py --out bench/RESULTS.md

# only the batch rows (local executor, Ray on one and two nodes), about three minutes
bench-batch:
	$(PY) bench/batch_speed.py --out bench/BATCH_RESULTS.md

clean:
	rm -rf $(DIST) .pytest_cache .ruff_cache
