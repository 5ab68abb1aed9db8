"""Generate the Python stubs for protos/*.proto into modelmesh/protos/.

`make protos` runs this. `--check` regenerates into a temp dir and exits 1 if the committed
stubs differ (tests/test_protos.py uses it), so stale stubs cannot land.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
OUT_DIR = ROOT / "modelmesh" / "protos"
HAND_WRITTEN = {"__init__.py"}


def generate(out: Path) -> list[str]:
    from grpc_tools import protoc  # dev dependency only

    protos = sorted(p.name for p in PROTO_DIR.glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed for {protos}")
    # protoc emits absolute imports (`import x_pb2`); the stubs live in a package.
    for f in out.glob("*_pb2*.py*"):
        text = f.read_text()
        text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        f.write_text(text)
    return sorted(f.name for f in out.iterdir() if f.name not in HAND_WRITTEN)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    opts = parser.parse_args()
    if opts.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = generate(Path(tmp))
            committed = sorted(
                f.name for f in OUT_DIR.iterdir() if f.is_file() and f.name not in HAND_WRITTEN
            )
            stale = [n for n in fresh if n not in committed or not filecmp.cmp(Path(tmp) / n, OUT_DIR / n, shallow=False)]
            extra = [n for n in committed if n not in fresh]
            if stale or extra:
                print(f"stale generated stubs: {stale + extra}; run `make protos`", file=sys.stderr)
                return 1
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for f in OUT_DIR.glob("*_pb2*"):
        f.unlink()
    names = generate(OUT_DIR)
    print(f"generated {len(names)} files in {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
