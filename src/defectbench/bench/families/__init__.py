"""Method families of the experiment runner: one module each, one entry in :data:`FAMILY_MODULES`.

A family module holds ``KEYS`` (the config keys of its methods beside the common ones), a frozen options
dataclass with ``parse_options(entry, where)`` that validates a config entry into it, ``run(job, ctx) ->
Produced`` (make the job's maps through :func:`defectbench.methods.base.write_maps`) and, optionally,
``preflight(job) -> str`` (check file references without running, for ``run --dry-run``), ``check_task(method,
task, where)`` (refuse a task when the config is read), ``check_methods(method, methods, where)`` (refuse a reference
to another method of the config), ``uses_gt(method)`` (the method reads the test ground truth: an oracle row), ``source_method(method)`` (the
name of the method whose maps it reads: that method's job joins its fingerprint, see :attr:`~defectbench.bench.jobs.Job.source`) and ``validate(job, dataset)`` (refuse a job's data before
the run starts).
"""

from __future__ import annotations

import importlib
from types import ModuleType

FAMILY_MODULES = {"sod": "defectbench.bench.families.sod", "sam": "defectbench.bench.families.sam",
                  "maps": "defectbench.bench.families.maps", "anomaly": "defectbench.bench.families.anomaly",
                  "sam_prompt": "defectbench.bench.families.sam_prompt"}


def family(name: str) -> ModuleType:
    """The module of method family ``name`` (imported on first use)."""
    return importlib.import_module(FAMILY_MODULES[name])
