"""``python -m tao_jobs <stage> --spec <uri>``: the single entry point of every stage (the container contract)."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback

from .contract import EXIT_BAD_INPUT, EXIT_INVALID_SPEC, BadInput, InvalidSpec, emit, write_reason
from .spec import load

STAGES = ("prepare", "generate", "score", "dataset", "train", "evaluate")


def _exit_with_parent() -> None:
    """With TAO_EXIT_WITH_PARENT=1 (the local executor), die when the worker dies: no orphaned jobs."""
    if os.environ.get("TAO_EXIT_WITH_PARENT") != "1" or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    _exit_with_parent()
    parser = argparse.ArgumentParser(prog="python -m tao_jobs")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--spec", required=True, help="URI of the stage spec (file:// or s3://)")
    args = parser.parse_args(argv)
    try:
        spec, store = load(args.spec, args.stage)
        module = importlib.import_module(f"tao_jobs.stages.{args.stage}")
        manifest = module.run(spec, store)
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports (and writes outputs)
            emit("done", stage=args.stage, records=manifest.get("records"), metrics=manifest.get("metrics"))
        return 0
    except InvalidSpec as e:
        for p in e.problems:
            print(f"invalid stage spec: {p}", file=sys.stderr)
        write_reason(str(e))
        return EXIT_INVALID_SPEC
    except BadInput as e:
        print(f"bad input: {e}", file=sys.stderr)
        write_reason(f"bad input: {e}")
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - anything else is a crash the orchestrator may retry
        traceback.print_exc()
        write_reason(f"{type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
