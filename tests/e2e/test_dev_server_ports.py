"""The embedded dev server picks some of its ports itself (the HTTP API's): one taken by another
process between its pick and its bind must not fail the start."""

from __future__ import annotations

import socket
import threading
import time

from argus.workers.devserver import DevServer, free_port


def test_a_port_taken_under_the_dev_server_s_feet_costs_a_second_launch_not_the_start(tmp_path):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    http_port = taken.getsockname()[1]
    dev = DevServer(
        tmp_path, "default", port=free_port(), ui_port=None, extra_args=["--http-port", str(http_port)]
    )

    def release_once_refused() -> None:
        # the first launch fails on the taken port; the next one finds it free
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if dev.log_path.exists() and b"address already in use" in dev.log_path.read_bytes():
                taken.close()
                return
            time.sleep(0.05)

    releaser = threading.Thread(target=release_once_refused)
    releaser.start()
    try:
        dev.start()
        assert dev.log_path.read_bytes().count(b"bind: address already in use") >= 1
        with socket.create_connection(("127.0.0.1", http_port), timeout=5):
            pass  # the second launch has the HTTP API on the port it was given
    finally:
        releaser.join()
        taken.close()
        dev.stop()
