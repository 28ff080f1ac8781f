# Two commands a person needs: `make demo` and `make test`. Everything else is a step of theirs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system install weaviate browser office demo test test-fast lint typecheck pytest lock clean

setup: system install weaviate

# Debian's Cairo, which CairoSVG renders SVG charts with (usually already there); installed once.
system:
	@ldconfig -p | grep -q 'libcairo.so.2 ' || ($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcairo2)

# The lock pins every version (uv resolves it for all platforms); uv installs from its cache, so a second
# environment on the same machine costs seconds and an existing one is never reinstalled.
install: $(STAMP)
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# The pinned Weaviate server: built once with Go (falls back to the release binary), then reused.
weaviate: $(STAMP)
	@$(BIN)/mmrag weaviate install

lock:
	$(BIN)/uv pip compile --quiet --universal --extra dev pyproject.toml -o requirements.lock

demo: setup
	@$(BIN)/mmrag demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# Debian's Chromium for the browser test (tests/test_ui_browser.py drives it headless); installed once.
browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Debian's Tesseract (OCR of scanned pages) and headless LibreOffice (page images of Office files): optional for a
# user (mmrag indexes without them and says what they would add), installed for the tests of both; installed once.
OFFICE_PACKAGES := tesseract-ocr tesseract-ocr-eng libreoffice-writer-nogui libreoffice-calc-nogui \
	libreoffice-impress-nogui fonts-dejavu-core fonts-liberation
office:
	@(command -v tesseract && command -v soffice) >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(OFFICE_PACKAGES))

pytest: setup browser office
	$(BIN)/pytest

test: setup lint typecheck pytest

# The edit loop: pytest without the `slow` (training, big corpora, fuzzing) and `browser` tests, in about 2 minutes.
test-fast: setup
	$(BIN)/pytest -m "not slow and not browser"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Many more mutated files through extract_file than `make test` runs (tests/test_fuzz_extract.py; minutes).
.PHONY: fuzz
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/test_fuzz_extract.py -q
