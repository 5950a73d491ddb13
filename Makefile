# Frontdesk — every target bootstraps what it needs on a fresh clone (uv, then the locked venv).

PYTHON ?= python3
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: test lint format serve check bootstrap demo clips bench

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --frozen
	@touch $@

bootstrap: .venv/.synced

test: .venv/.synced
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen pytest -q -n 4 --dist loadfile

demo: .venv/.synced
	$(UV) run --frozen python main.py demo $(ARGS)

# The load benchmark (see bench/__main__.py): make bench [ARGS="--quick" | ARGS="--faults"].
bench: .venv/.synced
	$(UV) run --frozen --group bench python -m bench $(ARGS)

# Regenerate the caller's speech clips after adding scenario lines (needs espeak-ng).
clips: .venv/.synced
	$(UV) run --frozen python -m emulators.speech.make_clips

lint: .venv/.synced
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: .venv/.synced
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

check: .venv/.synced
	$(UV) run --frozen python main.py check

serve: .venv/.synced
	$(UV) run --frozen python main.py serve
