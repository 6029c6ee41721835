"""The EFI hand-off of an x86_64 kexec_load: what the next kernel needs to keep EFI runtime services.

A kernel booted through the EFI stub called SetVirtualAddressMap, which firmware allows once; the next kernel must
therefore reuse the running one's virtual mappings instead of asking again. What it reads for that (the facts come
from arch/x86/kernel/kexec-bzimage64.c setup_efi_state, arch/x86/platform/efi/quirks.c efi_reuse_config and
kexec-tools' kexec/arch/i386/x86-linux-setup.c setup_efi_data; layouts from arch/x86/include/uapi/asm/bootparam.h
and include/linux/efi.h):

- boot_params.efi_info (0x1c0, 32 bytes): the loader signature ("EL64"), the system table's physical address, the
  memory descriptor size and version, and the EFI memory map (address and size). Taken from the running kernel's
  zero page (/sys/kernel/boot_params/data), with the memory map replaced by the runtime map below.
- the memory map: only the runtime regions, each with the virtual address already given to it
  (/sys/firmware/efi/runtime-map/N/{type,phys_addr,virt_addr,num_pages,attribute}, CONFIG_EFI_RUNTIME_MAP), as
  efi_memory_desc_t records of the running kernel's descriptor size; the next kernel maps each at that address
  (kexec_enter_virtual_mode) rather than calling SetVirtualAddressMap.
- a SETUP_EFI (4) setup_data, chained from hdr.setup_data (0x250): struct efi_setup_data {u64 fw_vendor; u64 runtime
  (unused since Linux 5.7, still written); u64 tables; u64 smbios; u64 reserved[8]}, the physical addresses the
  firmware had before SetVirtualAddressMap turned the system table's copies into virtual ones
  (/sys/firmware/efi/{fw_vendor,runtime,config_table}, SMBIOS= in /sys/firmware/efi/systab).
- boot_params.secure_boot (0x1ec), copied.

Without a runtime map (a kernel built without CONFIG_EFI_RUNTIME_MAP, or booted with noefi/efi=noruntime, so there
are no runtime services to hand on) the next kernel gets no efi_info: it starts as with `noefi` (no EFI runtime
services, no efivars). Either way boot_params.acpi_rsdp_addr (0x070, protocol 2.14) is set from the systab's
ACPI20=/ACPI= as kexec-tools does, so the next kernel finds ACPI even without EFI.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SYSFS = Path("/sys")
EFI_DIR = "firmware/efi"
BOOT_PARAMS = "kernel/boot_params/data"
BP_ACPI_RSDP_ADDR = 0x070
BP_EFI_INFO = 0x1C0
EFI_INFO_SIZE = 32
BP_SECURE_BOOT = 0x1EC
HDR_SETUP_DATA = 0x250
SETUP_EFI = 4
SETUP_DATA_HEADER = 16  # struct setup_data: u64 next; u32 type; u32 len
EFI_SETUP_DATA_SIZE = 12 * 8
MEMDESC_MIN = 40  # sizeof(efi_memory_desc_t): u32 type, u32 pad, u64 phys_addr, virt_addr, num_pages, attribute
EFI64_LOADER_SIGNATURE = b"EL64"
EFI_MEMDESC_VERSION = 1  # EFI_MEMORY_DESCRIPTOR_VERSION, the one the kernel (and kexec-tools) accepts
MAX_REGIONS = 1024  # a bound on the runtime map: real machines have tens
MAX_VALUE_FILE = 4096


@dataclass(frozen=True)
class RuntimeRegion:
    """One /sys/firmware/efi/runtime-map/N entry."""

    type: int
    phys_addr: int
    virt_addr: int
    num_pages: int
    attribute: int

    def pack(self, desc_size: int) -> bytes:
        """An efi_memory_desc_t padded to `desc_size` (firmware may use larger descriptors than the struct)."""
        raw = struct.pack("<IIQQQQ", self.type, 0, self.phys_addr, self.virt_addr, self.num_pages, self.attribute)
        return raw + bytes(desc_size - len(raw))


@dataclass(frozen=True)
class EfiState:
    """What the running kernel knows of the firmware, to hand on through boot_params and SETUP_EFI setup_data."""

    efi_info: bytes  # the running kernel's boot_params.efi_info (32 bytes), memory map fields to be replaced
    secure_boot: int
    fw_vendor: int
    runtime: int
    tables: int
    smbios: int
    regions: tuple[RuntimeRegion, ...]

    @property
    def systab(self) -> int:
        lo, hi = struct.unpack_from("<I", self.efi_info, 4)[0], struct.unpack_from("<I", self.efi_info, 24)[0]
        return int(lo | hi << 32)

    @property
    def desc_size(self) -> int:
        return max(int(struct.unpack_from("<I", self.efi_info, 8)[0]), MEMDESC_MIN)

    @property
    def desc_version(self) -> int:
        return int(struct.unpack_from("<I", self.efi_info, 12)[0])

    def memmap(self) -> bytes:
        return b"".join(r.pack(self.desc_size) for r in self.regions)

    @property
    def memmap_offset(self) -> int:
        """Where the runtime map starts in the setup_data segment: after the setup_data, 16-byte aligned."""
        return -(-(SETUP_DATA_HEADER + EFI_SETUP_DATA_SIZE) // 16) * 16

    def segment(self) -> bytes:
        """The setup_data, padding, then the runtime map: one kexec_load segment's bytes."""
        setup = self.setup_data()
        return setup + bytes(self.memmap_offset - len(setup)) + self.memmap()

    def setup_data(self, next_addr: int = 0) -> bytes:
        """struct setup_data of type SETUP_EFI with its struct efi_setup_data."""
        body = struct.pack("<QQQQ", self.fw_vendor, self.runtime, self.tables, self.smbios) + bytes(8 * 8)
        return struct.pack("<QII", next_addr, SETUP_EFI, len(body)) + body

    def efi_info_for(self, memmap_addr: int) -> bytes:
        """efi_info pointing at the runtime map placed at `memmap_addr`."""
        info = bytearray(self.efi_info)
        struct.pack_into("<I", info, 8, self.desc_size)
        struct.pack_into("<I", info, 16, memmap_addr & 0xFFFFFFFF)
        struct.pack_into("<I", info, 20, len(self.regions) * self.desc_size)
        struct.pack_into("<I", info, 28, memmap_addr >> 32)
        return bytes(info)

    def describe(self) -> str:
        return (
            f"EFI hand-off: efi_info (EL64, systab {self.systab:#x}) and secure_boot from {BOOT_PARAMS}, SETUP_EFI "
            f"setup_data (fw_vendor {self.fw_vendor:#x}, tables {self.tables:#x}, smbios {self.smbios:#x}), the EFI "
            f"runtime map: {len(self.regions)} regions of {self.desc_size} bytes from {EFI_DIR}/runtime-map"
        )


@dataclass(frozen=True)
class EfiHandoff:
    """The running kernel was booted through EFI: the state to hand on, or (state None) why it cannot be, with the
    ACPI RSDP the next kernel is then told of instead."""

    state: EfiState | None
    why_not: str = ""
    acpi_rsdp: int = 0

    def describe(self) -> str:
        rsdp = f"; ACPI RSDP {self.acpi_rsdp:#x} in boot_params.acpi_rsdp_addr" if self.acpi_rsdp else ""
        if self.state is not None:
            return self.state.describe() + rsdp
        return (
            f"no EFI hand-off ({self.why_not}): the next kernel starts as with noefi, without EFI runtime "
            f"services{rsdp}"
        )


class _Missing(Exception):
    pass


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_VALUE_FILE)
    except OSError as err:
        raise _Missing(f"cannot read {path}: {err.strerror}") from None
    return data.decode("ascii", "replace")


def _read_int(path: Path) -> int:
    text = _read_text(path).strip()
    try:
        return int(text, 0)
    except ValueError:
        raise _Missing(f"{path}: not a number: {text[:40]!r}") from None


def _systab_value(text: str, key: str) -> int:
    for line in text.splitlines()[:64]:
        name, _, value = line.partition("=")
        if name.strip() == key:
            try:
                return int(value.strip(), 0)
            except ValueError:
                return 0
    return 0


def read_runtime_map(root: Path) -> tuple[RuntimeRegion, ...]:
    """The runtime-map entries in index order; _Missing when there is none."""
    try:
        names = sorted((p.name for p in root.iterdir() if p.name.isdigit()), key=int)
    except OSError as err:
        raise _Missing(
            f"no {root} ({err.strerror}): the running kernel lacks CONFIG_EFI_RUNTIME_MAP or runs without EFI "
            "runtime services"
        ) from None
    if not names:
        raise _Missing(f"{root} is empty")
    if len(names) > MAX_REGIONS:
        raise _Missing(f"{root}: {len(names)} entries, more than {MAX_REGIONS}")
    regions = []
    for name in names:
        d = root / name
        regions.append(
            RuntimeRegion(
                type=_read_int(d / "type"),
                phys_addr=_read_int(d / "phys_addr"),
                virt_addr=_read_int(d / "virt_addr"),
                num_pages=_read_int(d / "num_pages"),
                attribute=_read_int(d / "attribute"),
            )
        )
    return tuple(regions)


def read(sysfs: Path = SYSFS) -> EfiHandoff | None:
    """The hand-off for a kernel booted through EFI; None when it was not (no /sys/firmware/efi)."""
    efi = sysfs / EFI_DIR
    if not efi.is_dir():
        return None
    rsdp = 0
    try:
        systab = _read_text(efi / "systab")
        rsdp = _systab_value(systab, "ACPI20") or _systab_value(systab, "ACPI")
        bp_path = sysfs / BOOT_PARAMS
        try:
            bp = bp_path.read_bytes()[:4096]
        except OSError as err:
            raise _Missing(f"cannot read {bp_path}: {err.strerror}") from None
        if len(bp) < BP_SECURE_BOOT + 1:
            raise _Missing(f"{bp_path}: {len(bp)} bytes, too short for boot_params")
        info = bp[BP_EFI_INFO : BP_EFI_INFO + EFI_INFO_SIZE]
        if info[:4] != EFI64_LOADER_SIGNATURE:
            raise _Missing(f"{bp_path}: efi_info has loader signature {info[:4]!r}, not a 64-bit EFI boot")
        if not struct.unpack_from("<I", info, 20)[0]:
            raise _Missing(f"{bp_path}: efi_info has no memory map (EFI runtime services off)")
        version = struct.unpack_from("<I", info, 12)[0]
        if version != EFI_MEMDESC_VERSION:
            raise _Missing(f"{bp_path}: EFI memory descriptor version {version}, only {EFI_MEMDESC_VERSION} is known")
        state = EfiState(
            efi_info=info,
            secure_boot=bp[BP_SECURE_BOOT],
            fw_vendor=_read_int(efi / "fw_vendor"),
            runtime=_read_int(efi / "runtime"),
            tables=_read_int(efi / "config_table"),
            smbios=_systab_value(systab, "SMBIOS"),
            regions=read_runtime_map(efi / "runtime-map"),
        )
    except _Missing as why:
        return EfiHandoff(None, str(why), rsdp)
    return EfiHandoff(state, acpi_rsdp=rsdp)
