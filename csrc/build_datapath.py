"""cffi (API mode) build script for the fast path: compiles csrc/*.c into
vswitch.datapath._datapath.  Run by `pip install .` through setup.py's
cffi_modules, or directly (`python csrc/build_datapath.py`) for an in-place
build during development.

Every csrc/*.c is compiled, so a new port type is one C file that registers
itself (netdev_provider.h); if it has entry points of its own for Python
(as netdev_dummy.h), its header netdev_TYPE.h joins the cdef by itself."""
import glob
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "*.c")))
# The public API, in dependency order; the port types' own headers follow.
# netdev_provider.h (the port-type interface) and afxdp.h/xdp_prog.h (an
# engine under a type) are C-only.
CORE_HEADERS = ["flow_key.h", "netdev.h", "packet_edit.h", "meter.h", "offload.h", "classifier.h", "datapath.h"]
C_ONLY = {"netdev_provider.h"}


def _headers():
    types = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "netdev_*.h")))
    return CORE_HEADERS + [h for h in types if h not in C_ONLY]


def _cdef_from_headers():
    """The cdef is the public headers' API; the structs it uses come from the
    headers too, minus preprocessor lines, so C and Python cannot drift.
    Every `#define VS_NAME <number>` is declared to cffi as a constant."""
    parts, consts = [], []
    for header in _headers():
        with open(os.path.join(HERE, header)) as f:
            text = f.read()
        consts += re.findall(r"^#define (VS_[A-Z0-9_]+)\s+\(?(?:0x)?[0-9]", text, flags=re.M)
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        parts.append("\n".join(lines))
    cdef = "\n".join(parts)
    # Array sizes given by a constant: cffi takes them from the compiler.
    cdef = re.sub(r"\[VS_[A-Z0-9_]+\]", "[...]", cdef)
    consts = [c for c in dict.fromkeys(consts) if not c.endswith("_H")]
    cdef += "\n" + "\n".join(f"#define {name} ..." for name in consts)
    return cdef


def make_builder(absolute_paths):
    """setuptools insists on paths relative to setup.py (its cwd); cffi's own
    compile() runs in a temporary directory and needs absolute ones."""
    base = HERE if absolute_paths else "csrc"
    builder = FFI()
    builder.cdef(_cdef_from_headers())
    builder.set_source(
        "vswitch.datapath._datapath",
        "\n".join(f'#include "{h}"' for h in _headers()),
        sources=[os.path.join(base, s) for s in SOURCES],
        include_dirs=[base],
        extra_compile_args=["-O2", "-g", "-std=gnu11", "-Wall", "-Wno-unused-function"],
        libraries=["pthread"],
    )
    return builder


ffibuilder = make_builder(absolute_paths=False)

if __name__ == "__main__":
    os.chdir(os.path.dirname(HERE))
    make_builder(absolute_paths=True).compile(tmpdir="build/cffi", verbose=False)
    import shutil

    for so in glob.glob("build/cffi/vswitch/datapath/_datapath*.so"):
        # Copy, then rename over the old file: running daemons keep the inode
        # they mapped.  Writing into it in place crashes them.
        dst = os.path.join("vswitch/datapath", os.path.basename(so))
        shutil.copy(so, dst + ".tmp")
        os.replace(dst + ".tmp", dst)
        print("built", dst)
