# Assay: set-up, build and test on Debian (apt-get) or any machine that already has the libraries.

DEBIAN_PACKAGES := libopenblas-dev libsqlite3-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev ffmpeg
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo)

.PHONY: deps build release test demo clean

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

## build: debug build of the `assay` command.
build: deps
	$(SWIFT) build

## release: optimised build (what benchmarks and the demo use).
release: deps
	$(SWIFT) build -c release

## test: install what is missing, build and run every test. Tests that need ../shared skip with a
## message when it is absent.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build
