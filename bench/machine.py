"""What the benchmark ran on: CPU, cores, instruction-set flags, library versions, GPU, date."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

_INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", []
    model, flags = "unknown", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, [f for f in _INTERESTING_FLAGS if f in flags]


def machine_details() -> dict[str, str]:
    """Key facts of this machine and software stack, as strings for a table."""
    import numpy as np
    import onnxruntime as ort
    import rasterio
    import torch

    from landslide_engine.cpus import usable_cpu_count

    model, flags = _cpu_model_and_flags()
    details = {
        "date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "CPU": model,
        "cores usable / online": f"{usable_cpu_count()} / {os.cpu_count()}",
        "CPU flags (of interest)": ", ".join(flags) or "none of " + ", ".join(_INTERESTING_FLAGS),
        "torch CPU capability": torch.backends.cpu.get_cpu_capability(),
        "load average at start": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "Python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": f"{ort.__version__} (providers: {', '.join(ort.get_available_providers())})",
        "numpy": np.__version__,
        "rasterio / GDAL": f"{rasterio.__version__} / {rasterio.__gdal_version__}",
    }
    if torch.cuda.is_available():
        details["GPU"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        details["GPU"] = "none visible to torch"
    return details
