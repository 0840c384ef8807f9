"""Explorer app speed on this machine, with the shipped checkpoints (figures printed, never asserted).

  python bench/bench_app.py [--calls 50] [--long 500] [--model aae-lsgan-128]

Measures: cold start (process start to the first page served), /generate latency through
gradio_client (p50 / p95 over --calls, then the first and last 50 of --long calls to show
any growth), the server's resident memory, and the floors: the models' own time per call
(in-process), their FLOPs over the CPU's measured matmul rate (arithmetic floor), and a
Gradio app returning two 256-px images without any model (framework floor).

Latency is given for two gradio_client set-ups: the default, and ssl_verify=False. For a
plain-http URL the second changes nothing but the client's own CPU time: by default it
loads the CA bundle for each of the ~4 HTTP requests of a call (~25 ms of CPU each here),
and on a 2-core machine shared with the server that also slows the server down.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], port: int) -> tuple[subprocess.Popen, float]:
    """Start a server; seconds until its page answers."""
    import urllib.request

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            return proc, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server {args} exited with {proc.returncode}")
            time.sleep(0.1)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def latencies(client, api: str, args_of, count: int) -> np.ndarray:
    out = []
    for k in range(count):
        t0 = time.perf_counter()
        client.predict(*args_of(k), api_name=api)
        out.append((time.perf_counter() - t0) * 1000)
    return np.array(out)


def model_floor(model: str) -> tuple[float, float, float]:
    """(ms per call in-process, GFLOPs per call, measured GFLOP/s of a matmul)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from retinagan.explorer import Explorer

    ex = Explorer(ROOT / "checkpoints")
    ex.generate(model, 0)  # load and warm up
    times = []
    for seed in range(30):
        t0 = time.perf_counter()
        ex.generate(model, seed)
        times.append((time.perf_counter() - t0) * 1000)
    with FlopCounterMode(display=False) as counter:
        ex.generate(model, 1)
    a = torch.randn(1024, 1024)
    t0 = time.perf_counter()
    for _ in range(20):
        a @ a
    rate = 20 * 2 * 1024**3 / (time.perf_counter() - t0) / 1e9
    return float(np.median(times)), counter.get_total_flops() / 1e9, rate


def load_test(port: int, model: str, clients: int, per_client: int, pid: int) -> None:
    """clients concurrent gradio_client clients x per_client /generate calls each."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    def one(c: int):
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        times, errors = [], 0
        for k in range(per_client):
            t0 = time.perf_counter()
            try:
                client.predict(c * 1000 + k, "unknown", model, api_name="/generate")
            except Exception:  # noqa: BLE001 - counted, not raised: the figure is the error count
                errors += 1
            times.append((time.perf_counter() - t0) * 1000)
        client.close()
        return times, errors

    before = rss_mb(pid)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(clients)))
    wall = time.perf_counter() - t0
    lat = np.concatenate([r[0] for r in results])
    errors = sum(r[1] for r in results)
    print(f"load: {clients} clients x {per_client} calls in {wall:.0f} s ({len(lat) / wall:.1f} calls/s), {errors} errors, "
          f"p50 {np.percentile(lat, 50):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms; RSS {before:.0f} -> {rss_mb(pid):.0f} MB")


FRAMEWORK_APP = textwrap.dedent("""
    import os, sys
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr, numpy as np
    QUEUE = sys.argv[2] == "queue"
    rng = np.random.default_rng(0)  # not all zeros: images that cost what real ones cost to encode
    a, b = (rng.random((256, 256)) > 0.9).astype(np.uint8) * 255, rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    with gr.Blocks() as demo:
        s, g, m = gr.Number(), gr.Textbox(), gr.Textbox()
        o1, o2 = gr.Image(format="png"), gr.Image(format="png")
        gr.Button().click(lambda *x: (a, b), [s, g, m], [o1, o2], api_name="generate", queue=QUEUE)
    demo.queue().launch(server_port=int(sys.argv[1]))

""")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--long", type=int, default=500)
    parser.add_argument("--model", default="aae-lsgan-128")
    parser.add_argument("--clients", type=int, default=8, help="concurrent gradio_client clients for the load test (0: skip)")
    parser.add_argument("--per-client", type=int, default=50)
    args = parser.parse_args()
    from gradio_client import Client

    port = free_port()
    proc, cold = start(["app.py", "--port", str(port)], port)
    print(f"cold start to first page: {cold:.1f} s")
    try:
        generate = lambda k: (k, "unknown", args.model)  # noqa: E731
        for verify in (True, False):
            client = Client(f"http://127.0.0.1:{port}/", verbose=False, ssl_verify=verify)
            latencies(client, "/generate", generate, 5)  # warm-up: models load on first use
            lat = latencies(client, "/generate", generate, args.calls)
            print(f"/generate via gradio_client ({'default' if verify else 'ssl_verify=False'}), {args.calls} calls: "
                  f"p50 {np.percentile(lat, 50):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms")
            client.close()  # its heartbeat thread would otherwise keep running beside the next client
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        if args.long:
            more = latencies(client, "/generate", generate, args.long)
            print(f"{args.long} more calls: first 50 p50 {np.median(more[:50]):.0f} ms, last 50 p50 {np.median(more[-50:]):.0f} ms")
        client.close()
        print(f"server memory (RSS) after the calls: {rss_mb(proc.pid):.0f} MB")
        if args.clients:
            load_test(port, args.model, args.clients, args.per_client, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(FRAMEWORK_APP)
    for mode in ("no-queue", "queue"):  # the app's /generate runs off the queue
        port = free_port()
        proc, _ = start([f.name, str(port), mode], port)
        try:
            for verify in (True, False):
                client = Client(f"http://127.0.0.1:{port}/", verbose=False, ssl_verify=verify)
                latencies(client, "/generate", lambda k: (k, "", ""), 5)
                floor = latencies(client, "/generate", lambda k: (k, "", ""), args.calls)
                print(f"framework floor (Gradio returning two 256-px PNGs, no model, {mode}, "
                      f"{'default client' if verify else 'ssl_verify=False'}): p50 {np.percentile(floor, 50):.0f} ms")
                client.close()
        finally:
            proc.terminate()
            proc.wait(10)
    ms, gflops, rate = model_floor(args.model)
    print(f"models in-process: {ms:.0f} ms a call ({gflops:.2f} GFLOP; arithmetic floor {gflops / rate * 1000:.0f} ms at the measured {rate:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
