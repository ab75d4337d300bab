# Two entry points, both from a fresh clone: `make demo` and `make test`.
# Each creates .venv and installs batchplan into it first.
PYTHON ?= python3
VENV := $(CURDIR)/.venv
STAMP := $(VENV)/.installed
BATCHPLAN := $(VENV)/bin/batchplan

.PHONY: demo test lint install

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	@# The distribution was once named `batchplan`; an old editable install of it
	@# would shadow this one (and take the command with it when removed).
	$(VENV)/bin/pip uninstall --quiet --yes batchplan 2>/dev/null || true
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job on the embedded sandbox, in a fresh folder each time:
# plan, apply, then a plan that must show no changes (exit 0 with
# --detailed-exitcode; 2 would mean changes were left).
demo: $(STAMP)
	@set -e; dir=$$(mktemp -d); \
	cp examples/kitten_labeling/batchplan.yaml "$$dir/"; cd "$$dir"; \
	echo "== batchplan plan (in $$dir)"; $(BATCHPLAN) plan --endpoint sandbox; \
	echo; echo "== batchplan apply"; $(BATCHPLAN) apply --endpoint sandbox --auto-approve; \
	echo; echo "== batchplan plan, again"; \
	$(BATCHPLAN) plan --endpoint sandbox --detailed-exitcode

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict batchplan

test: lint
	$(VENV)/bin/pytest -n auto
