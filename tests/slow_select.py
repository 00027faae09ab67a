"""`python tests/slow_select.py select --pool …`: `taast select` with the detector slowed down, for
the tests that kill a run mid-pass.

Test double: the real DetectStage plus half a second per batch. The test pools (~45 images at
64 px) are otherwise detected in about a second, one Ray Data execution, so a kill timed on the
first detections file would land after the last. The outputs are the real stage's.
"""
import functools
import sys
import time

import taast_ray.pipeline.live as live
from taast_ray.cli import main
from taast_ray.stages.detect import DetectStage

SECONDS_PER_BATCH = 0.5


class SlowDetectStage(DetectStage):
    def __call__(self, batch):
        time.sleep(SECONDS_PER_BATCH)
        return super().__call__(batch)


if __name__ == "__main__":
    live.select_live = functools.partial(live.select_live, detect_stage_cls=SlowDetectStage)
    sys.exit(main())
