# The two entry points of the README. Both install what they need into .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Real datasets (hymenoptera, Omniglot, USPS) resolve from a local copy when there is one.
SHARED_DATA := $(abspath ../shared/data)
export TRANSFERKIT_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)

.PHONY: install tour tour-quick test test-slow bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job: the guided tour on a built-in dataset (Fashion-MNIST when installed, else digits).
tour: $(STAMP)
	@[ -d /usr/share/datasets/fashion-mnist ] || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } || \
	  echo "Fashion-MNIST is not installed: the tour runs on digits"
	$(BIN)/transferkit tour

tour-quick: $(STAMP)
	$(BIN)/transferkit tour --dataset digits --quick

# The test suite (what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout 900

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow --timeout 3600

clean:
	rm -rf $(VENV) runs .transferkit-cache
