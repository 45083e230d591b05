"""Run every benchmark (what `make bench` does); each writes its JSON under benchmarks/results/."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [["respond.py"], ["training.py"], ["telemetry.py"], ["retrieval.py"], ["redaction.py"], ["scaling.py"], ["refresh.py"]]

if __name__ == "__main__":
    failed = 0
    for script, *args in SCRIPTS:
        print(f"== {script} {' '.join(args)}", flush=True)
        failed += subprocess.call([sys.executable, str(HERE / script), *args]) != 0
    sys.exit(1 if failed else 0)
