"""``python -m tao_jobs.torchrun <torchrun flags> -m tao_jobs <stage> --spec <uri>``: torchrun that keeps the
container contract's exit codes.

torchrun exits 1 whatever its workers returned, so a worker's "do not retry" (64: invalid stage spec, 65:
missing or corrupt input) would be retried by the Kubernetes Job until its backoffLimit. This launcher runs
torchrun in-process and, when workers failed, exits with 64 or 65 if any worker did (the Job's
podFailurePolicy then fails it at once), else with 1. torchrun's own restarts (``--max-restarts``) still happen
first: it cannot tell a bad spec from a crash.
"""

from __future__ import annotations

import sys

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

CONTRACT_CODES = (64, 65)


def exit_code(error: ChildFailedError) -> int:
    codes = {failure.exitcode for failure in error.failures.values()}
    for code in CONTRACT_CODES:
        if code in codes:
            return code
    return 1


def main(argv: list[str] | None = None) -> int:
    try:
        run(parse_args(sys.argv[1:] if argv is None else argv))
    except ChildFailedError as e:
        print(f"tao_jobs.torchrun: workers failed: {e.format_msg()}", file=sys.stderr)
        return exit_code(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
