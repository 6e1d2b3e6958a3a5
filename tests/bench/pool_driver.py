"""``python -m tests.bench.pool_driver CONFIG RUNS_DIR``: a run on two CPU "devices" (for the kill -9 test)."""

import sys

from defectbench.bench import load_config, run_experiment
from defectbench.bench.device_pool import DevicePoolBackend
from tests.bench.pool_fakes import timed_compute

if __name__ == "__main__":
    summary = run_experiment(load_config(sys.argv[1]), sys.argv[2], progress=False,
                             backend=DevicePoolBackend(["cpu", "cpu"], compute=timed_compute, worker_logs=False))
    print(f"{len(summary.done)} done now, {len(summary.already_done)} already done, {len(summary.failed)} failed")
