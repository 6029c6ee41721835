# bootmenu: `make test` sets everything up (venv, Debian packages, test kernel) and runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CACHE ?= .cache
# Debian packages the tests and `bootmenu qemu` need; installed with apt-get when a command is missing.
APT_PACKAGES := qemu-system-x86 busybox-static dosfstools mtools fdisk e2fsprogs kmod cpio xz-utils zstd gcc python3-dev libudev1 btrfs-progs xfsprogs squashfs-tools genisoimage binutils
APT_COMMANDS := qemu-system-x86_64 busybox mkfs.vfat mcopy sfdisk mkfs.ext4 depmod cpio xz zstd gcc mkfs.btrfs mkfs.xfs mksquashfs genisoimage objcopy

.PHONY: all setup system-deps kernel test test-fast lint fmt typecheck bench bench-parse demo qemu clean

all: test

# The cffi extension (kexec_core/_kexec) is compiled by the install: rebuild when its sources change.
$(BIN)/.installed: pyproject.toml setup.py kexec_core/_kexec.h kexec_core/_kexec_shim.c kexec_core/_build.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

system-deps:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null 2>&1 || \
	    [ -x /sbin/$$c ] || [ -x /usr/sbin/$$c ] || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages (missing:$$missing)"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

setup: system-deps $(BIN)/.installed

# The test kernel, and systemd's EFI stub for the unified kernel image on the test ESP (both unpacked, never installed).
kernel: system-deps
	@tools/fetch-kernel $(CACHE)/kernel >/dev/null
	@tools/fetch-deb systemd-boot-efi $(CACHE)/systemd-boot-efi >/dev/null

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

fmt: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Everything, QEMU end-to-end tests included.
test: setup kernel lint typecheck
	$(BIN)/pytest

# The quick subset: no QEMU boots.
test-fast: setup lint typecheck
	$(BIN)/pytest -m 'not qemu'

bench: setup kernel
	$(BIN)/python -m tools.bench

# Time per config to parse the shared corpus (../shared/corpus, when present) and the distribution fixtures.
bench-parse: setup
	$(BIN)/python -m tools.bench_parse

demo: setup
	$(BIN)/bootmenu demo

# The payload in QEMU (TCG) on the sample disks, serial console here; Ctrl-A x quits.
qemu: setup kernel
	$(BIN)/bootmenu qemu

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
