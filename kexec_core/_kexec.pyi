# Type stub for the compiled cffi module (kexec_core/_build.py): cffi objects are untyped.
from typing import Any

ffi: Any
lib: Any
