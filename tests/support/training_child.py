"""A child process for Training-tab runner tests: progress, optional `saved` events, then an exit code.

python -m tests.support.training_child --code N [--saved MODEL:PATH:EPOCH ...] [--sleep S] --events FILE
"""

import argparse
import sys
import time

from core.jobs import EXIT_OK, EXIT_USER_ERROR, EventWriter

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", type=int, default=0)
    parser.add_argument("--saved", nargs="*", default=[])
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--stopped", action="store_true", help="report a stop in the result, as trainers do")
    parser.add_argument("--config")
    parser.add_argument("--events")
    args = parser.parse_args()
    events = EventWriter(args.events)
    events.progress(1, 4, "epoch 1, step 1/4")
    for item in args.saved:
        model, path, epoch = item.split(":")
        events.emit("saved", model=model, path=path, epoch=int(epoch), step=2)
    events.progress(2, 4, "epoch 2, step 2/4")
    if args.code == EXIT_USER_ERROR:
        events.emit("error", message="something a person can fix")
    time.sleep(args.sleep)
    if args.code == EXIT_OK:
        events.emit("result", stopped=args.stopped)
    sys.exit(args.code)
