"""A child process for job tests: reports progress, then sleeps until killed."""

import argparse
import time

from tools.jobs import EventWriter

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events")
    args = parser.parse_args()
    EventWriter(args.events).progress(1, 100, "started")
    time.sleep(60)
