"""``python -m toolrun`` and the ``toolrun`` console script."""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        return _dispatch(args)
    finally:
        # At exit Python runs its collector over every object toolrun made, moments before the
        # process ends anyway: 20 ms of `toolrun exec`'s 100 ms budget here. Frozen, they are
        # skipped. Nothing depends on that last collection: what toolrun writes, it closes.
        gc.freeze()


def _dispatch(args: list[str]) -> int:
    # The seed's -v/--version answers before anything heavy is imported.
    if args in (["-v"], ["--version"]):
        from . import __version__

        print(f"toolrun {__version__}")
        return 0
    from .cli.fast import try_fast_path

    code = try_fast_path(args)
    if code is not None:
        return code
    from .cli.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
