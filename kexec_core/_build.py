"""cffi build script for kexec_core._kexec (API mode, out of line), run by setuptools through `cffi_modules`.

The cdef is kexec_core/_kexec.h and the C source kexec_core/_kexec_shim.c; both are real files so that compilers,
linters and reviewers see them as C. Build by hand with `python kexec_core/_build.py` (writes the .so beside it).
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "_kexec.h").read_text())
# The shim is compiled as the module's C source: constants in the cdef (`...`) are resolved from its #includes.
ffibuilder.set_source("kexec_core._kexec", (HERE / "_kexec_shim.c").read_text())

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=True)
