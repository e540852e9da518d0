"""Cold start of the function app: median wall time of a fresh interpreter importing
`function_app` (and indexing it, as the worker does) against one importing only
`azure.functions`, and their ratio. Goal: at most 1.3.

    python bench/cold_start.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "azure.functions only": "import azure.functions",
    "function_app (import + index)": "import function_app; function_app.app.get_functions()",
}


def wall_ms(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], cwd=ROOT, check=True)
    return (time.perf_counter() - start) * 1000


def main(runs: int) -> None:
    for statement in CASES.values():  # warm the page cache and write .pyc files
        wall_ms(statement)
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(runs):  # interleaved, so background noise hits both alike
        for name, statement in CASES.items():
            samples[name].append(wall_ms(statement))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"python {sys.version.split()[0]}, {runs} runs each, interleaved")
    for name, values in samples.items():
        print(f"  {name:32s} median {medians[name]:7.1f} ms"
              f"   min {min(values):7.1f}   max {max(values):7.1f}")
    base, app = medians.values()
    print(f"  ratio function_app / azure.functions: {app / base:.2f} (goal <= 1.3)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
