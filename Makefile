# bootmenu: `make test` sets everything up (venv, Debian packages, test kernel) and runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CACHE ?= .cache
# Debian packages the tests and `bootmenu qemu` need; installed with apt-get when a command is missing.
APT_PACKAGES := python3-venv qemu-system-x86 qemu-system-arm busybox-static dosfstools mtools fdisk e2fsprogs kmod cpio xz-utils zstd lz4 gcc python3-dev libudev1 libsodium23 btrfs-progs xfsprogs squashfs-tools genisoimage binutils binutils-aarch64-linux-gnu device-tree-compiler gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-libc-dev-arm64-cross
APT_COMMANDS := qemu-system-x86_64 qemu-system-aarch64 busybox mkfs.vfat mcopy sfdisk mkfs.ext4 depmod cpio xz zstd lz4 gcc mkfs.btrfs mkfs.xfs mksquashfs genisoimage objcopy aarch64-linux-gnu-objdump dtc fdtget aarch64-linux-gnu-gcc

# The arm64 payload's sysroot (`bootmenu initramfs build --arch arm64`, initramfs/arm64.py), unpacked only, never
# installed: busybox, Python (runtime, stdlib, headers for the cross-built cffi module), the libraries its modules and
# pyudev load, Debian's _cffi_backend; `make arm64-payload` adds the arm64 kernel package of the test kernel's version.
ARM64_PAYLOAD := busybox-static python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev libc6 \
	zlib1g libexpat1 libffi8 liblzma5 libuuid1 libudev1 libgcc-s1 libsodium23 python3-cffi-backend

.PHONY: arm64-payload all setup system-deps kernel syslinux conformance grub-editenv test test-fast lint fmt typecheck bench bench-parse demo qemu clean

all: test

# Every network step runs under tools/retry: a mirror or PyPI that cannot be resolved for a few minutes is waited
# for (up to ~15 minutes per step, each failure shown) instead of failing the build.
RETRY := tools/retry
PIP_NET := --retries 10 --timeout 60

# The cffi extension (kexec_core/_kexec) is compiled by the install: rebuild when its sources change.
$(BIN)/.installed: pyproject.toml setup.py kexec_core/_kexec.h kexec_core/_kexec_shim.c kexec_core/_build.py
	$(PYTHON) -m venv $(VENV)
	$(RETRY) --what "pip install --upgrade pip" $(BIN)/pip install -q $(PIP_NET) --upgrade pip
	$(RETRY) --what "pip install -e .[test]" $(BIN)/pip install -q $(PIP_NET) -e '.[test]'
	touch $@

# python3-venv (ensurepip) and python3-dev (Python.h, for the cffi build) have no command to look for.
system-deps:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null 2>&1 || \
	    [ -x /sbin/$$c ] || [ -x /usr/sbin/$$c ] || missing="$$missing $$c"; done; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing ensurepip"; \
	$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
	    || missing="$$missing Python.h"; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages (missing:$$missing)"; \
	    $(RETRY) --what "apt-get update" apt-get update -q --error-on=any && \
	    DEBIAN_FRONTEND=noninteractive $(RETRY) --what "apt-get install" \
	        apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

setup: system-deps $(BIN)/.installed

# The test kernel, systemd's EFI stub for the unified kernel image on the test ESP, OVMF (Debian's ovmf) for the
# systemd-boot conformance runs and U-Boot (u-boot-qemu) for the U-Boot ones (all unpacked, never installed).
kernel: system-deps
	@tools/fetch-kernel $(CACHE)/kernel >/dev/null
	@tools/fetch-kernel-arm64 $(CACHE)/kernel/root $(CACHE)/kernel-arm64 >/dev/null
	@$(MAKE) -s arm64-payload
	@tools/fetch-deb systemd-boot-efi $(CACHE)/systemd-boot-efi >/dev/null
	@tools/fetch-deb ovmf $(CACHE)/ovmf >/dev/null
	@tools/fetch-deb u-boot-qemu $(CACHE)/u-boot-qemu >/dev/null

# bootmenu against real GRUB 2.06 (Debian's grub-emu, unpacked, run as nobody with no capabilities), real
# systemd-boot 252 (OVMF under QEMU TCG), real U-Boot 2023.01 (u-boot-qemu's qemu-x86 build under QEMU TCG) and real
# syslinux 6.04 (isolinux/syslinux-common/syslinux unpacked under .cache, each syslinux fixture booted in QEMU TCG
# from an ISO or FAT image): records the answers for changed fixtures in tests/data/*_conformance.json and prints each
# config's verdict and the totals per loader. Boots QEMU: on a shared machine, run it under `flock /tmp/qemu.lock`.
conformance: setup kernel syslinux
	@tools/fetch-deb grub-emu $(CACHE)/grub-emu >/dev/null
	@if ldd $(CACHE)/grub-emu/root/usr/bin/grub-emu | grep -q 'not found'; then \
	    apt-get install -y -q --no-install-recommends libsdl1.2debian libdevmapper1.02.1; fi
	BOOTMENU_SYSLINUX_RECORD=1 $(BIN)/pytest -q -s -p no:cacheprovider tests/conformance

# The arm64 payload's sysroot in $(CACHE)/arm64-payload/root, with the arm64 kernel package (modules included) of the
# x86_64 test kernel's version; then `bootmenu initramfs build --arch arm64` needs no other input.
arm64-payload:
	@tools/fetch-kernel $(CACHE)/kernel >/dev/null
	@version=$$(basename $$(ls $(CACHE)/kernel/root/boot/vmlinuz-*-amd64 | head -n 1) | sed 's/^vmlinuz-//; s/-amd64$$//'); \
	    tools/fetch-debs-arm64 $(CACHE)/arm64-payload $(ARM64_PAYLOAD) "linux-image-$$version-arm64" >/dev/null

# Debian's syslinux 6.04 (isolinux.bin, the BIOS .c32 modules, the mtools installer), unpacked under .cache, never
# installed: the syslinux conformance harness boots it in QEMU (tests/conformance/syslinux_qemu.py).
syslinux:
	@for p in isolinux syslinux-common syslinux; do tools/fetch-deb $$p $(CACHE)/$$p >/dev/null; done

# Debian's grub-editenv (grub-common unpacked under .cache, never installed): the tests check grubenv writes with it.
grub-editenv:
	@tools/fetch-deb grub-common $(CACHE)/grub-common >/dev/null

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

fmt: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Everything, QEMU end-to-end tests included, on two workers (tests/conftest.py schedules the QEMU tests first,
# longest first); the 15 slowest tests are listed at the end.
PYTEST_PARALLEL ?= -n 2 --dist loadscope --durations=15
test: setup kernel grub-editenv syslinux lint typecheck
	$(BIN)/pytest $(PYTEST_PARALLEL)

# The quick subset: no QEMU boots.
test-fast: setup grub-editenv lint typecheck
	$(BIN)/pytest -m 'not qemu'

bench: setup kernel
	$(BIN)/python -m tools.bench
	$(BIN)/python -m tools.bench_net

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
