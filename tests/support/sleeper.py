"""A child process for job tests: reports progress, then sleeps until killed."""

import argparse
import os
import time

from core.jobs import EventWriter

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events")
    parser.add_argument("--print-env", metavar="NAME", help="print NAME=value of the environment and exit")
    args = parser.parse_args()
    if args.print_env:
        print(f"{args.print_env}={os.environ.get(args.print_env, '')}", flush=True)
        raise SystemExit(0)
    EventWriter(args.events).progress(1, 100, "started")
    time.sleep(60)
