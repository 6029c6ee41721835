"""setuptools shim: only for the out-of-line cffi module, which pyproject.toml cannot declare."""

from setuptools import setup

setup(cffi_modules=["kexec_core/_build.py:ffibuilder"])
