"""Build linecount.wasm from linecount.wat with the assembler in wasmtime (a dependency of
toolrun, so nothing else is needed), then refresh the hashes in tool.toml:

    python build.py && toolrun registry rehash .

The same text gives the same bytes, so a rebuild changes no hash unless the source changed.
"""

from __future__ import annotations

from pathlib import Path

import wasmtime

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    source = (HERE / "linecount.wat").read_text(encoding="utf-8")
    module = wasmtime.wat2wasm(source)
    (HERE / "linecount.wasm").write_bytes(module)
    print(f"linecount.wasm: {len(module)} bytes")
