"""`python tests/slow_select.py [--hold-once-written FOLDER] select --pool …`: `taast select` with
the detector slowed down, for the tests that kill a run mid-pass.

Test double: the real DetectStage plus half a second per batch. The test pools (~45 images at
64 px) are otherwise detected in about a second, one Ray Data execution, so a kill timed on the
first detections file would land after the last. The outputs are the real stage's.

``--hold-once-written FOLDER``: once a parquet file is in FOLDER (the run's detections), or once
the actor has detected the listing's first block (``LISTING_BLOCK_MIN_ROWS``, 32 rows for a test
pool), every further batch waits a minute, so a kill timed on the first file lands mid-pass
whatever the machine's speed. The half second alone is not enough: Ray Data hands on an actor
task's output when the task ends, so the first files appear only when the listing's first block
is done, and the rest of a test pool can follow within a second (a busy CI machine with the S3
test double once wrote the whole pass before the kill). Waiting for the file alone was not
enough either: the second block (5 rows of the S3 test's 37) was detected while the first
block's files were still being written to the S3 test double, and the whole pass landed before
the kill (seen once in `make test`). The class is pickled by value from this script, so the
folder reaches the actors whichever Ray cluster runs them.
"""
import functools
import sys
import time

import taast_ray.pipeline.live as live
from taast_ray.cli import main
from taast_ray.io import list_parquet
from taast_ray.stages.detect import DetectStage
from taast_ray.stages.sources import LISTING_BLOCK_MIN_ROWS

SECONDS_PER_BATCH = 0.5
HOLD_SECONDS = 60.0


class SlowDetectStage(DetectStage):
    hold_once_written: str | None = None
    rows_detected = 0

    def __call__(self, batch):
        time.sleep(SECONDS_PER_BATCH)
        if self.hold_once_written and (self.rows_detected >= LISTING_BLOCK_MIN_ROWS
                                       or list_parquet(self.hold_once_written)):
            time.sleep(HOLD_SECONDS)
        self.rows_detected += batch.num_rows
        return super().__call__(batch)


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--hold-once-written"]:
        SlowDetectStage.hold_once_written, argv = argv[1], argv[2:]
    live.select_live = functools.partial(live.select_live, detect_stage_cls=SlowDetectStage)
    sys.exit(main(argv))
