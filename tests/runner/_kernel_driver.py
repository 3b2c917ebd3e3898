"""Drive a Deno Jupyter kernel cell by cell and record its IOPub messages (for
tests/runner/jupyter_kernel_test.ts; run with Debian's /usr/bin/python3 and jupyter_client).

Usage: _kernel_driver.py CELLS.json
CELLS.json: {"cwd": DIR, "cells": [{"code": "...", "interrupt_after_updates": N or null}, ...]}.
Starts the kernel named "deno" (found through JUPYTER_PATH) in DIR, executes the cells in order,
sends SIGINT (a Jupyter interrupt) after the N-th update_display_data of a cell when asked, and
prints one JSON object: {"cells": [{"status", "messages": [...]}], "alive": bool}. Each message
is {"type", "display_id", "text" (text/plain, stream text or the error), "ename"}.
"""

import json
import queue
import sys
import time

from jupyter_client.manager import start_new_kernel

GRACE = 0.5  # seconds of silence after idle (the Deno kernel sends some outputs late)


def run_cell(km, kc, cell):
    msg_id = kc.execute(cell["code"])
    after = cell.get("interrupt_after_updates")
    messages, updates, idle_at, interrupted = [], 0, None, False
    deadline = time.time() + cell.get("timeout", 300)
    while time.time() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.1)
        except queue.Empty:
            if idle_at is not None and time.time() - idle_at > GRACE:
                break
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status":
            if content["execution_state"] == "idle":
                idle_at = time.time()
            continue
        if kind == "execute_input":
            continue
        data = content.get("data", {})
        messages.append({
            "type": kind,
            "display_id": content.get("transient", {}).get("display_id"),
            "text": content.get("text") or data.get("text/plain") or content.get("evalue"),
            "ename": content.get("ename"),
            "mimes": sorted(data.keys()),
        })
        if kind == "update_display_data":
            updates += 1
            if after is not None and updates == after and not interrupted:
                km.interrupt_kernel()
                interrupted = True
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=30)
    return {"status": reply["content"]["status"], "interrupted": interrupted, "messages": messages}


def main():
    spec = json.load(open(sys.argv[1]))
    km, kc = start_new_kernel(kernel_name="deno", startup_timeout=180, cwd=spec["cwd"])
    try:
        cells = [run_cell(km, kc, cell) for cell in spec["cells"]]
        print(json.dumps({"cells": cells, "alive": km.is_alive()}))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
