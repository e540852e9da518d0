# One target per job. `make test` is the test command: from a fresh clone it creates the venv,
# installs the pinned Azurite with npm ci, then runs the linters, the type checker and every test.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMPS := .stamps

.PHONY: setup test lint typecheck unit integration bench dev demo clean

setup: $(STAMPS)/venv $(STAMPS)/node

# The CLI (`azlin-storage`) is installed into the venv too, editable: .venv/bin/azlin-storage.
$(STAMPS)/venv: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/node: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p $(STAMPS) && touch $@

lint: setup
	$(VENV)/bin/ruff check .
	@if command -v shellcheck >/dev/null; then \
		shellcheck --shell=bash shared/scripts/*.sh local/sandbox/*.sh local/sandbox/vmroot/usr/sbin/mount.nfs local/sandbox/vmroot/usr/sbin/mount.aznfs; \
	else echo "shellcheck is not installed (Debian: apt-get install shellcheck); .ci/run installs it"; fi

typecheck: setup
	$(VENV)/bin/mypy

# pytest exits 5 when it collects nothing; make treats that as the failure it is. Two workers
# (pytest-xdist), each with its own Azurite, emulator and sandbox VMs; a file's tests stay on one.
test: lint typecheck
	$(PY) -m pytest -n 2 --dist loadfile

unit: setup
	$(PY) -m pytest tests/unit

integration: setup
	$(PY) -m pytest tests/integration tests/functions

# The whole service on this machine (Azurite, the Azure emulator, the Functions host); PORT picks
# the host's port (default 7071); KEEP=1 keeps storage, VMs and records across restarts (under
# .local/; without it every start is empty). Ctrl-C stops it. Needs root for the sandbox VMs.
dev: setup
	$(PY) -m local dev $(if $(filter 1 yes true,$(KEEP)),--keep)

# The seed's manual test plan against the `make dev` stack (started for the demo when none runs),
# every step timed. Needs root, like `make dev`.
demo: setup
	$(PY) -m local demo

bench: setup
	$(PY) bench/cold_start.py
	$(PY) bench/local_azure.py
	$(PY) bench/arm_calls.py
	$(PY) bench/access.py

clean:
	rm -rf $(VENV) $(STAMPS) .local node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
