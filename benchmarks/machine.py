"""Machine facts shared by the benchmark scripts (recorded in every results JSON)."""
import os
import platform


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what platform knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average():
    """1/5/15-minute load average, or None where the OS has none (the boxes are shared)."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None
