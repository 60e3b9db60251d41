# Two commands matter: `make run` (try it, embedded defaults) and `make test` (everything, on real components).
# The distribution's interpreter when it can make a venv: Debian builds it with PGO and LTO, and it ran
# CareGuard's Python 25-30 % faster than a plain source build (pyenv's default) on the same machine.
PYTHON ?= $(shell /usr/bin/python3 -c 'import ensurepip' 2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
DEBIAN_TEST_PACKAGES := python3-venv mosquitto postgresql victoria-metrics chromium ffmpeg fonts-noto-cjk sip-tester python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad rabbitmq-server

.PHONY: run test bench system-deps clean

# axe-core from npm for the pages' accessibility tests (Node.js and npm: Debian's `npm` when missing).
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = "0" ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.installed-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(VENV)/.installed-run $@

run: $(VENV)/.installed-run
	$(VENV)/bin/careguard run

# Installs the Debian packages the tests start for real, when root and when missing.
system-deps:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages (run as root to install):$$missing"; fi; \
	fi

test: system-deps $(VENV)/.installed-test node_modules/.installed
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q

bench: system-deps $(VENV)/.installed-test
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info node_modules
