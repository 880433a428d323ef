"""Middleware overhead: the gateway's GET /healthz (request id, body cap,
problem rendering, metrics, access log) against a bare Tornado handler
serving the same JSON, one worker each, measured in the same run with wrk.

Goal (issue 2): the gateway keeps at least 0.8 of the bare Tornado rate.

    python bench/http_overhead.py [--seconds 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bare_tornado, best_of, gateway, wrk  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    with bare_tornado() as bare, gateway(workers=1) as gw:
        wrk(bare + "/healthz", seconds=1)  # warm up both
        wrk(gw + "/healthz", seconds=1)
        ref = best_of(args.runs, wrk, bare + "/healthz", seconds=args.seconds)
        ours = best_of(args.runs, wrk, gw + "/healthz", seconds=args.seconds)
    ratio = ours["rps"] / ref["rps"]
    print(
        json.dumps(
            {
                "bench": "http_overhead",
                "bare_tornado": ref,
                "gateway": ours,
                "ratio": round(ratio, 3),
                "goal": 0.8,
                "meets_goal": ratio >= 0.8,
            }
        )
    )
    print(
        f"gateway {ours['rps']:.0f} req/s vs bare Tornado {ref['rps']:.0f} req/s: "
        f"ratio {ratio:.2f} (goal >= 0.80)"
    )


if __name__ == "__main__":
    main()
