"""The README's MLflow UI picture, reproducibly: starts ``raysweep ui`` on a store, opens a sweep's parent run (the
latest one of the experiment named) in headless Chromium (``scripts/browser.sh`` installs it) and writes a
screenshot, then stops the UI.

    .venv/bin/python bench/ui_screenshot.py reproduce-local-ball-mnist docs/ui_sweep_run.png --size 1600,1100
    .venv/bin/python bench/ui_screenshot.py reproduce-local-ball-mnist runs.png --view runs    # the training-runs table
"""

import argparse
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment")
    ap.add_argument("out")
    ap.add_argument("--tracking-uri", default=f"sqlite:///{REPO / 'mlflow.db'}")
    ap.add_argument("--size", default="1600,1300", help="window width,height in pixels")
    ap.add_argument("--view", choices=["run", "runs"], default="run",
                    help="run: the sweep's parent run page; runs: the experiment's training runs (parent and trials)")
    args = ap.parse_args(argv)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.tracking_uri)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        raise SystemExit(f"no experiment {args.experiment!r} in {args.tracking_uri}")
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`raysweep.kind` = 'sweep'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise SystemExit(f"experiment {args.experiment!r} has no sweep run")
    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("chromium is missing: bash scripts/browser.sh")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as profile:
        browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
        _close_assistant(browser, port)
        ui = subprocess.Popen([sys.executable, "-m", "raysweep.cli", "ui", "--port", str(port), "--tracking-uri",
                               args.tracking_uri], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            for line in ui.stdout:  # the UI is up once it prints its links
                if re.search(r"experiment '.*': http", line):
                    break
            else:
                raise SystemExit(f"raysweep ui exited (code {ui.wait()}) before printing its links")
            base = f"http://127.0.0.1:{port}/#/experiments/{exp.experiment_id}"
            url = (f"{base}/runs/{parents[0].info.run_id}" if args.view == "run" else f"{base}/runs") + \
                "?workflowType=machine_learning"
            subprocess.run(browser + ["--virtual-time-budget=20000", f"--window-size={args.size}",
                                      f"--screenshot={Path(args.out).absolute()}", url],
                           check=True, capture_output=True, timeout=180)
            print(f"{args.out}: {url}")
        finally:
            ui.send_signal(signal.SIGTERM)
            ui.wait(timeout=60)


# MLflow 3.17's UI opens its Assistant panel by itself on a browser's first visit to a local server (a third of the
# window); a user closes it once and it stays closed. A fresh profile has never closed it, so the flags the UI keeps
# in the origin's localStorage are set first, by a page served on the same origin before the UI takes the port.
_ASSISTANT_CLOSED = {"mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true", "mlflow.assistant.panelOpen_v1": "false"}


def _close_assistant(browser, port):
    import http.server
    import json
    import threading

    page = ("<script>" + "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});"
                                 for k, v in _ASSISTANT_CLOSED.items())
            + "document.title='set'</script>").encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        subprocess.run(browser + ["--dump-dom", f"http://127.0.0.1:{port}/"], check=True, capture_output=True, timeout=120)
    finally:
        srv.shutdown()
        srv.server_close()

if __name__ == "__main__":
    main()
