# setuptools needs setup.py only to hand cffi its build script (cffi_modules).
from setuptools import setup

setup(cffi_modules=["csrc/build_datapath.py:ffibuilder"])
