"""`python tests/slow_select.py [--hold-once-written FOLDER] select --pool …`: `taast select` with
the detector slowed down, for the tests that kill a run mid-pass.

Test double: the real DetectStage plus half a second per batch. The test pools (~45 images at
64 px) are otherwise detected in about a second, one Ray Data execution, so a kill timed on the
first detections file would land after the last. The outputs are the real stage's.

``--hold-once-written FOLDER``: the listing is cut into blocks of ``HOLD_BLOCK_ROWS`` rows, and
once the actor has detected ``HOLD_AFTER_ROWS`` rows, or once a parquet file is in FOLDER (the
run's detections), every further batch waits ``HOLD_SECONDS``, so a kill timed on the first file
lands mid-pass whatever the machine's speed and whatever order the blocks arrive in. Ray Data
hands on an actor task's output only when the task ends, so the first file appears only once
whole blocks are done. Earlier forms of this hold each failed once in CI: the half second alone
(the whole pass was written before the kill); waiting for the file alone (a 5-row second block
was detected while the first block's files were still going to the S3 test double); and holding
after the listing's first 32-row block (the 5-row block reached the actor first, so the hold began
inside the 32-row block, whose output, and with it the first file, then came only when the pass
was done). With 4-row blocks and a hold after 24 rows, at least 24 rows' output has been handed
on (one actor runs one task at a time) and the rest waits, in any order. The class is pickled by
value from this script, so the settings reach the actors whichever Ray cluster runs them.
"""
import functools
import sys
import time

import taast_ray.pipeline.live as live
from taast_ray.cli import main
from taast_ray.io import list_parquet
from taast_ray.stages.detect import DetectStage
import taast_ray.stages.sources as sources

SECONDS_PER_BATCH = 0.5
HOLD_BLOCK_ROWS = 4
HOLD_AFTER_ROWS = 24
HOLD_SECONDS = 60.0


class SlowDetectStage(DetectStage):
    hold_once_written: str | None = None
    rows_detected = 0

    def __call__(self, batch):
        time.sleep(SECONDS_PER_BATCH)
        if self.hold_once_written and (self.rows_detected >= HOLD_AFTER_ROWS
                                       or list_parquet(self.hold_once_written)):
            time.sleep(HOLD_SECONDS)
        self.rows_detected += batch.num_rows
        return super().__call__(batch)


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--hold-once-written"]:
        SlowDetectStage.hold_once_written, argv = argv[1], argv[2:]
        sources.LISTING_BLOCK_MIN_ROWS = HOLD_BLOCK_ROWS  # read by listing_dataset, on this driver
    live.select_live = functools.partial(live.select_live, detect_stage_cls=SlowDetectStage)
    sys.exit(main(argv))
