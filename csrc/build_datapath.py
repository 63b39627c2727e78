"""cffi (API mode) build script for the fast path: compiles csrc/*.c into
vswitch.datapath._datapath.  Run by `pip install .` through setup.py's
cffi_modules, or directly (`python csrc/build_datapath.py`) for an in-place
build during development.

Every csrc/*.c is compiled, so a new port type is one C file that registers
itself (netdev_provider.h); if it has entry points of its own for Python
(as netdev_dummy.h), its header netdev_TYPE.h joins the cdef by itself.

VS_SANITIZE=thread builds with ThreadSanitizer instead, into
build/sanitize-thread/ together with a copy of the vswitch package, so that
the normal in-place module is left alone: run with
PYTHONPATH=build/sanitize-thread and LD_PRELOAD=$(gcc -print-file-name=libtsan.so)
(Python itself is not instrumented, so the runtime must be loaded first).
tests/datapath/stress_loop.py does that."""
import glob
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "*.c")))
# The public API, in dependency order; the port types' own headers follow.
# netdev_provider.h (the port-type interface) and afxdp.h/xdp_prog.h (an
# engine under a type) are C-only.
SANITIZE = os.environ.get("VS_SANITIZE", "")
SANITIZE_FLAGS = {"thread": ["-fsanitize=thread", "-O1", "-g"]}
CORE_HEADERS = ["flow_key.h", "netdev.h", "packet_edit.h", "offload.h", "classifier.h", "datapath.h"]
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
    if SANITIZE and SANITIZE not in SANITIZE_FLAGS:
        raise SystemExit(f"VS_SANITIZE={SANITIZE}: known are {', '.join(SANITIZE_FLAGS)}")
    sanitize = SANITIZE_FLAGS.get(SANITIZE, [])
    builder = FFI()
    builder.cdef(_cdef_from_headers())
    builder.set_source(
        "vswitch.datapath._datapath",
        "\n".join(f'#include "{h}"' for h in _headers()),
        sources=[os.path.join(base, s) for s in SOURCES],
        include_dirs=[base],
        extra_compile_args=["-O2", "-g", "-std=gnu11", "-Wall", "-Wno-unused-function"] + sanitize,
        extra_link_args=sanitize,
        libraries=["pthread"],
    )
    return builder


ffibuilder = make_builder(absolute_paths=False)

def _build_sanitized():
    """The package copied to build/sanitize-KIND/, with the instrumented module in it."""
    import shutil

    out = f"build/sanitize-{SANITIZE}"
    shutil.rmtree(os.path.join(out, "vswitch"), ignore_errors=True)
    shutil.copytree("vswitch", os.path.join(out, "vswitch"),
                    ignore=shutil.ignore_patterns("_datapath*.so", "__pycache__"))
    make_builder(absolute_paths=True).compile(tmpdir=os.path.join(out, "cffi"), verbose=False)
    for so in glob.glob(os.path.join(out, "cffi/vswitch/datapath/_datapath*.so")):
        shutil.copy(so, os.path.join(out, "vswitch/datapath"))
        print("built", os.path.join(out, "vswitch/datapath", os.path.basename(so)))


if __name__ == "__main__" and SANITIZE:
    os.chdir(os.path.dirname(HERE))
    _build_sanitized()
elif __name__ == "__main__":
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
