"""Screenshot of the quick start's live display, mid-run, as nbconvert renders it to HTML.

Regenerates notebooks/figures/live-display.png (the README shows it):

    /usr/bin/python3 notebooks/figures/live_display.py

Runs the first code cell of notebooks/quickstart.ipynb in a Deno kernel (`deno` from PATH, a
private kernelspec, a fresh results store in a temporary directory), keeps the display update
whose SVG was redrawn closest to half-way through the sweep, puts it in a one-cell notebook,
renders that to HTML with nbconvert (outputs only) and screenshots it with headless Chromium.
Needs Debian's jupyter-client, nbconvert and chromium.
"""

import json
import os
import queue
import subprocess
import sys
import tempfile

import nbformat
from jupyter_client.manager import start_new_kernel
from nbconvert import HTMLExporter

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOKS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(NOTEBOOKS, "..", "lib", "report"))
from execute_notebooks import clean_keep_svg  # noqa: E402


def run_cell(tmp: str, code: str) -> list:
    kernels = os.path.join(tmp, "kernels", "deno")
    os.makedirs(kernels)
    with open(os.path.join(kernels, "kernel.json"), "w") as f:
        json.dump({"argv": ["deno", "jupyter", "--kernel", "--conn", "{connection_file}"],
                   "display_name": "Deno", "language": "typescript", "env": {"NO_COLOR": "1"}}, f)
    os.environ["JUPYTER_PATH"] = tmp
    os.environ["ABLATE_RUNS"] = os.path.join(tmp, "runs")
    km, kc = start_new_kernel(kernel_name="deno", startup_timeout=180, cwd=NOTEBOOKS)
    bundles = []
    try:
        msg_id = kc.execute(code)
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=600)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("display_data", "update_display_data"):
                bundles.append(msg["content"]["data"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return bundles


def main() -> None:
    quick = nbformat.read(os.path.join(NOTEBOOKS, "quickstart.ipynb"), as_version=4)
    cell = next(c for c in quick.cells if c.cell_type == "code")
    with tempfile.TemporaryDirectory() as tmp:
        live = [b for b in run_cell(tmp, cell.source) if "application/vnd.vegalite.v5+json" in b]
        fresh = [b for i, b in enumerate(live) if i == 0 or b["image/svg+xml"] != live[i - 1]["image/svg+xml"]]
        def progress(b):  # "4 of 8 runs finished ..." → 0.5
            done, _, total = b["text/plain"].split(" ", 3)[:3]
            return int(done) / max(int(total), 1)

        running = [b for b in fresh if " running" in b["text/plain"]] or fresh
        mid = min(running, key=lambda b: abs(progress(b) - 0.5))
        cell.outputs = [nbformat.v4.new_output("display_data", data=mid)]
        nb = nbformat.v4.new_notebook(cells=[cell], metadata=quick.metadata)
        body, _ = HTMLExporter(exclude_input=True, filters={"clean_html": clean_keep_svg}) \
            .from_notebook_node(nb)
        html = os.path.join(tmp, "live.html")
        with open(html, "w") as f:
            f.write(body)
        out = os.path.join(HERE, "live-display.png")
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", f"--user-data-dir={tmp}/chrome",
                        "--window-size=840,560", "--virtual-time-budget=5000",
                        f"--screenshot={out}", f"file://{html}"],
                       check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        print(out)


if __name__ == "__main__":
    main()
