"""Execute Jupyter notebooks with the Deno kernel, headlessly, without losing late outputs.

Run by lib/report/notebooks.ts (`deno task notebooks`, and the notebook test) with Debian's
/usr/bin/python3 (`jupyter-nbconvert` + `python3-nbclient`). Stock `nbconvert --execute` drops
outputs the Deno kernel sends after its `status: idle` message (about half of the runs measured on
this machine kind, ../shared/notes/jupyter.md); this client keeps reading the IOPub channel until
it has been quiet for `--grace` seconds after idle.

Usage: execute_notebooks.py --out DIR [--html] [--grace S] [--timeout S] NOTEBOOK...
Each NOTEBOOK runs with its own directory as the working directory and is written, executed, to
DIR/<name>.ipynb (and DIR/<name>.html with --html). Cells that raise are recorded as error outputs
and execution goes on; the caller checks the outputs. Prints one JSON line per notebook.
"""

import argparse
import json
import os
import queue
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbclient.util import ensure_async


class GraceClient(NotebookClient):
    """A NotebookClient that keeps a cell's outputs arriving after the kernel said idle."""

    grace = 0.3

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        await super()._async_poll_output_msg(parent_msg_id, cell, cell_index)
        while True:
            try:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=self.grace))
            except queue.Empty:
                return
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                pass


def clean_keep_svg(html: str) -> str:
    """nbconvert's `clean_html` filter (applied to image/svg+xml outputs), keeping the SVG.

    Debian's nbconvert 6.5 cleans SVG outputs with lxml's default Cleaner, which drops every SVG
    element and leaves the chart's text only, so the HTML shows blank charts. This cleaner still
    removes scripts, event handlers, `javascript:` links and embedded frames, but keeps unknown
    (SVG) tags and their attributes.
    """
    from lxml.html.clean import Cleaner

    cleaner = Cleaner(scripts=True, javascript=True, comments=True, embedded=True, frames=True,
                      forms=True, processing_instructions=True, style=False, inline_style=False,
                      links=False, meta=False, page_structure=False, annoying_tags=False,
                      remove_unknown_tags=False, safe_attrs_only=False)
    return cleaner.clean_html(html)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--html", action="store_true")
    parser.add_argument("--grace", type=float, default=0.3)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--kernel", default="deno")
    parser.add_argument("notebooks", nargs="+")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    failed = 0
    for path in args.notebooks:
        name = os.path.splitext(os.path.basename(path))[0]
        nb = nbformat.read(path, as_version=4)
        client = GraceClient(
            nb,
            timeout=args.timeout,
            startup_timeout=180,
            kernel_name=args.kernel,
            allow_errors=True,
            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
        )
        client.grace = args.grace
        started = time.time()
        error = None
        try:
            client.execute()
        except Exception as e:  # kernel died or timed out: keep what ran, report it
            error = f"{type(e).__name__}: {e}"
            failed += 1
        out = os.path.join(args.out, name + ".ipynb")
        tmp = out + ".tmp"
        nbformat.write(nb, tmp)
        os.replace(tmp, out)
        if args.html:
            from nbconvert import HTMLExporter

            body, _ = HTMLExporter(filters={"clean_html": clean_keep_svg}).from_notebook_node(nb)
            html = os.path.join(args.out, name + ".html")
            with open(html + ".tmp", "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(html + ".tmp", html)
        print(json.dumps({"notebook": path, "out": out, "seconds": round(time.time() - started, 1),
                          "error": error}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
