"""cffi (API mode) build script for the fast path: compiles csrc/*.c into
vswitch.datapath._datapath.  Run by `pip install .` through setup.py's
cffi_modules, or directly (`python csrc/build_datapath.py`) for an in-place
build during development."""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["flow_key.c", "classifier.c", "netdev.c", "datapath.c", "packet_edit.c", "xdp_prog.c", "afxdp.c",
           "offload.c"]


def _cdef_from_headers():
    """The cdef is datapath.h's public API; the structs it uses come from the
    headers too, minus preprocessor lines, so C and Python cannot drift."""
    parts = []
    for header in ("flow_key.h", "netdev.h", "packet_edit.h", "offload.h", "afxdp.h", "classifier.h", "datapath.h"):
        with open(os.path.join(HERE, header)) as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        parts.append("\n".join(lines))
    cdef = "\n".join(parts)
    # cffi wants constants it cannot see as #defines declared explicitly.
    consts = {
        "VS_VLAN_CFI": None, "VS_KEY_WORDS": None, "VS_FRAG_ANY": None,
        "VS_FRAG_LATER": None, "VS_VNET_F_NEEDS_CSUM": None, "VS_HEADROOM": None,
        "VS_MAX_FRAME": None, "VS_BATCH": None, "VS_EMC_SIZE": None,
        "VS_MAX_PORTS": None, "VS_MAX_PMDS": None, "VS_DUMP_MAX_ACTIONS": None,
        "VS_SAMPLE_NARGS": None, "VS_SAMPLE_ALWAYS": None, "VS_SAMPLE_MAX_HEADER": None,
        "VS_SAMPLE_POOLS": None, "VS_SAMPLE_RING": None,
    }
    cdef = re.sub(r"\[VS_EMC_SIZE\]|\[VS_DUMP_MAX_ACTIONS\]|\[VS_BATCH\]", "[...]", cdef)
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
        '#include "datapath.h"\n#include "offload.h"',
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
    import glob
    import shutil

    for so in glob.glob("build/cffi/vswitch/datapath/_datapath*.so"):
        # Copy, then rename over the old file: running daemons keep the inode
        # they mapped.  Writing into it in place crashes them.
        dst = os.path.join("vswitch/datapath", os.path.basename(so))
        shutil.copy(so, dst + ".tmp")
        os.replace(dst + ".tmp", dst)
        print("built", dst)
