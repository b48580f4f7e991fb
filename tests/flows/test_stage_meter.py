import mmap
import time

import numpy as np

from flows.stage_meter import StageMeter


def test_cpu_wall_and_peak_memory_of_a_stage():
    meter = StageMeter()
    with meter.measure("busy"):
        t0 = time.process_time()
        while time.process_time() - t0 < 0.3:  # 0.3 s of CPU in this thread
            pass
    with meter.measure("alloc"):
        # 64 MiB of new pages, touched: an anonymous mapping of its own, since malloc may hand out heap
        # pages that are still resident from earlier frees (then the resident size does not grow; seen
        # in a long-lived pytest worker, reproduced with MALLOC_MMAP_THRESHOLD_ set high)
        region = mmap.mmap(-1, 64 * 2**20)
        block = np.frombuffer(region, np.uint8)
        block[::4096] = 1
        del block
        region.close()
    with meter.measure("idle"):
        time.sleep(0.2)
    busy, alloc, idle = meter.usage["busy"], meter.usage["alloc"], meter.usage["idle"]
    assert busy.cpu_s >= 0.29 and busy.wall_s >= busy.cpu_s * 0.5
    assert idle.wall_s >= 0.2 and idle.cpu_s < 0.15
    # the peak is reset at the start of each stage: only the stage that allocated sees the 64 MiB
    assert alloc.peak_rss_mb >= idle.peak_rss_mb + 60


def test_a_failing_stage_is_still_measured():
    meter = StageMeter()
    try:
        with meter.measure("fails"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "fails" in meter.usage
