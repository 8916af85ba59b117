"""``tlf serve``'s app: the API, served predictions equal to tlf predict's, limits, keys, metrics."""
from __future__ import annotations

import asyncio
import base64
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from onnx_helpers import CLASSES, export_small, shapes
from serve_helpers import encoded, png_header, relabelled
from tlf.cli import cli
from tlf.errors import TlfError
from tlf.serve.app import create_app
from tlf.serve.batching import MicroBatcher
from tlf.serve.guards import read_api_keys
from tlf.serve.models import load_models
from tlf.serve.settings import ServeSettings

KEY = "k" * 24


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    _, report = export_small(tmp, "resnet18", 32, exporter="torchscript")
    other = relabelled(report.path, tmp / "other.onnx", ["a", "b", "c"])
    return Path(report.path), other


def client(model, other=None, **settings) -> TestClient:
    models = (str(model),) + ((f"other={other}",) if other else ())
    return TestClient(create_app(ServeSettings(models=models, access_log=False, **settings)))


def files(images, fmt="PNG"):
    return [("file", (f"{i}.{fmt.lower()}", encoded(image, fmt), f"image/{fmt.lower()}")) for i, image in enumerate(images)]


def test_served_predictions_equal_tlf_predict(exported, tmp_path):
    model, _ = exported
    images, _ = shapes(6, 40, seed=5, square=False)
    names = [f"{i}.{'png' if i % 2 else 'jpeg'}" for i in range(6)]
    data = [encoded(image, name.split(".")[1].upper()) for image, name in zip(images, names)]
    for name, content in zip(names, data):
        (tmp_path / name).write_bytes(content)
    lines = CliRunner().invoke(cli, ["predict", str(model), *(str(tmp_path / n) for n in names), "--json", "-k", "3"]).output
    expected = [json.loads(line) for line in lines.splitlines()]
    with client(model) as c:
        multipart = c.post("/v1/predict?top_k=3", files=[("file", (n, d, "image/*")) for n, d in zip(names, data)])
        multipart = multipart.json()["predictions"]
        as_json = c.post("/v1/predict?top_k=3", json={"images": [base64.b64encode(d).decode() for d in data]})
    for served in (multipart, as_json.json()["predictions"]):
        assert [p["labels"][0] for p in served] == [e["labels"][0] for e in expected]
        np.testing.assert_allclose([p["probabilities"] for p in served], [e["probabilities"] for e in expected], atol=1e-5)


def test_answers_in_order_with_top_k_and_the_model(exported):
    model, other = exported
    images, _ = shapes(3, 36, seed=2)
    with client(model, other) as c:
        body = c.post("/v1/predict?top_k=2", files=files(images)).json()
        renamed = c.post("/v1/predict?top_k=3&model=other", files=files(images)).json()
        described = c.get("/models").json()["models"]
    assert [p["filename"] for p in body["predictions"]] == ["0.png", "1.png", "2.png"]
    assert all(len(p["labels"]) == 2 and p["label"] == p["labels"][0] for p in body["predictions"])
    assert body["model"]["name"] == model.stem and len(body["model"]["version"]) == 12
    assert body["model"]["preprocessing"]["crop"] == 32
    # the second model is the same network under other class names: same indices, its own labels
    assert [p["indices"][:2] for p in renamed["predictions"]] == [p["indices"] for p in body["predictions"]]
    assert {label for p in renamed["predictions"] for label in p["labels"]} == {"a", "b", "c"}
    assert [m["name"] for m in described] == [model.stem, "other"]
    assert described[0]["classes"] == CLASSES and described[0]["input_size"] == [3, 32, 32]
    assert described[0]["val_accuracy"] == 0.5 and described[0]["precision"] == "fp32"


def test_health_readiness_openapi_and_page(exported):
    from tlf.serve.page import CSP
    model, _ = exported
    with client(model) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}
        schema = c.get("/openapi.json").json()
        page = c.get("/")
    assert {"/v1/predict", "/models", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    assert set(schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert page.headers["content-security-policy"] == CSP and "default-src 'none'" in CSP
    assert '<input id="files" type="file"' in page.text


def bad_requests(image: bytes) -> dict[str, tuple[str, dict]]:
    """name -> (the error kind expected, the request's keyword arguments); each must be a 4xx."""
    multipart = lambda field, name, data: {"files": [(field, (name, data, "image/png"))]}  # noqa: E731
    json_body = {"content-type": "application/json"}
    return {
        "not an image": ("bad_image", multipart("file", "a.png", b"GIF89a but not really")),
        "truncated image": ("bad_image", multipart("file", "t.png", image[: len(image) // 2])),
        "decompression bomb": ("bad_image", multipart("file", "bomb.png", png_header(60000, 60000))),
        "100000x1 strip": ("bad_image", multipart("file", "strip.png", png_header(100000, 1))),
        "wrong field": ("wrong_field", multipart("image", "a.png", image)),
        "text field": ("wrong_field", {"data": {"file": "hello"}, **multipart("file", "a.png", image)}),
        "no image": ("no_image", {"headers": {"content-type": "multipart/form-data; boundary=x"}, "content": b"--x--\r\n"}),
        "too many images": ("too_many_images", {"files": [("file", (f"{i}.png", image, "image/png")) for i in range(5)]}),
        "oversize body": ("body_too_large", multipart("file", "big.png", image + b"\0" * 300_000)),
        "oversize chunked body": ("body_too_large", {"content": iter([b"x" * 100_000] * 4), "headers": json_body}),
        "bad JSON": ("bad_json", {"content": b"{not json", "headers": json_body}),
        "bad base64": ("bad_base64", {"json": {"images": ["***"]}}),
        "JSON without images": ("wrong_field", {"json": {"pictures": []}}),
        "other content type": ("unsupported_media_type", {"content": b"abc", "headers": {"content-type": "text/plain"}}),
    }


def test_every_bad_request_is_a_4xx_json_error_and_the_server_goes_on(exported):
    model, _ = exported
    images, _ = shapes(1, 40, seed=1)
    good = encoded(images[0])
    with client(model, max_files=4, max_body_bytes=200_000) as c:
        for name, (kind, request) in bad_requests(good).items():
            answer = c.post("/v1/predict", **request)
            assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
            assert answer.json()["error"]["kind"] == kind and answer.json()["error"]["message"], (name, answer.text)
        assert c.post("/v1/predict?model=nope", files=files(images)).status_code == 404
        assert c.post("/v1/predict?top_k=0", files=files(images)).status_code == 422
        assert c.get("/v1/predict").status_code == 405
        assert c.post("/v1/predict", files=files(images)).status_code == 200
        bomb = c.post("/v1/predict", files=[("file", ("b.png", png_header(9000, 9000), "image/png"))]).json()
    assert "the limit is 40,000,000" in bomb["error"]["message"] and bomb["error"]["kind"] == "bad_image"


def test_api_key(exported, tmp_path):
    model, _ = exported
    keys = tmp_path / "keys"
    keys.write_text(f"# one a line\n{KEY}\n")
    images, _ = shapes(1, 36)
    with client(model, api_key_file=str(keys)) as c:
        assert c.post("/v1/predict", files=files(images)).status_code == 401
        assert c.post("/v1/predict", files=files(images), headers={"X-API-Key": "x" * 24}).status_code == 401
        assert c.post("/v1/predict", files=files(images), headers={"X-API-Key": KEY}).status_code == 200
        assert c.get("/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.get("/metrics").status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200


@pytest.mark.parametrize("content, problem", [(None, "cannot read"), ("", "no key"), ("short\n", "shorter than 16")])
def test_bad_api_key_file_is_a_clear_error(tmp_path, content, problem):
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TlfError, match=problem):
        read_api_keys(str(path))


def test_full_queue_answers_503_with_retry_after(exported):
    model, _ = exported
    images, _ = shapes(3, 36)
    with client(model, max_queue=2) as c:
        answer = c.post("/v1/predict", files=files(images))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["kind"] == "queue_full"


def test_metrics_count_requests_errors_and_batches(exported):
    model, _ = exported
    images, _ = shapes(2, 36)
    with client(model) as c:
        c.post("/v1/predict", files=files(images))
        c.post("/v1/predict", files=[("file", ("x.png", b"nope", "image/png"))])
        text = c.get("/metrics").text
    assert 'tlf_requests_total{route="/v1/predict",status="200"} 1.0' in text
    assert 'tlf_errors_total{kind="bad_image"} 1.0' in text
    assert "tlf_batch_size_count 2.0" in text  # the warm-up call and the request's
    assert f'tlf_images_total{{model="{model.stem}"}} 2.0' in text and "tlf_queue_depth 0.0" in text
    assert 'tlf_request_seconds_count{route="/v1/predict"} 2.0' in text


def recording_batcher(calls: list[int], max_wait_s: float) -> MicroBatcher:
    def run(batch: np.ndarray) -> list[float]:
        calls.append(len(batch))
        return [float(x[0]) for x in batch]
    return MicroBatcher(run, max_batch=8, max_wait_s=max_wait_s, max_queue=64)


def test_micro_batching_shares_one_model_call_and_keeps_order():
    calls: list[int] = []

    async def main() -> list[list[float]]:
        batcher = recording_batcher(calls, max_wait_s=60.0)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit([np.array([i]), np.array([-i])]) for i in range(6)))
        await batcher.stop()
        return answers

    answers = asyncio.run(asyncio.wait_for(main(), 30))
    assert answers == [[float(i), float(-i)] for i in range(6)]
    assert calls == [8, 4]  # 12 images from 6 concurrent requests, batches capped at 8, nothing more expected


def test_a_batch_waits_for_images_being_decoded_and_a_lone_one_does_not():
    calls: list[int] = []

    async def main() -> None:
        batcher = recording_batcher(calls, max_wait_s=60.0)
        batcher.start()
        assert await asyncio.wait_for(batcher.submit([np.array([1])]), 30) == [1.0]  # not held for 60 s

        async def late() -> list[float]:
            with batcher.expecting(1):
                await asyncio.sleep(0.2)  # still decoding when the first image is queued
            return await batcher.submit([np.array([3])])
        assert await asyncio.wait_for(asyncio.gather(batcher.submit([np.array([2])]), late()), 30) == [[2.0], [3.0]]
        await batcher.stop()

    asyncio.run(main())
    assert calls == [1, 2]


def test_start_up_errors_are_one_line(exported, tmp_path):
    import socket
    model, _ = exported
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    (tmp_path / "folder").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = {"not found": [str(tmp_path / "missing.onnx")], "not a loadable ONNX model": [str(tmp_path / "junk.onnx")],
                 "not a tlf run directory": [str(tmp_path / "folder")], "is in use": [str(model), "--port", str(port)],
                 "cannot read the API-key file": [str(model), "--api-key-file", str(tmp_path / "none")],
                 "two models are named": [str(model), str(model)],
                 "is below --max-files": [str(model), "--max-queue", "4", "--max-files", "8"]}
        for problem, args in cases.items():
            result = CliRunner().invoke(cli, ["serve", *args, "--port", str(port) if "--port" in args else "0"])
            assert result.exit_code == 1 and problem in result.output, (problem, result.output)
            assert len(result.output.strip().splitlines()) == 1, result.output


# --- a real server: uvicorn in a child process on 127.0.0.1 -------------------------------------

STOPPED = (0, -15)  # uvicorn stops gracefully on SIGTERM, then re-raises it (exit status -15)


def free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# every other requirement of tlf is made unimportable in the server: what the Dockerfile's image holds
BLOCKING = """import sys
blocked = set(sys.argv[1].split(",")) - {""}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not in the runtime image")
sys.meta_path.insert(0, Block())
from tlf.cli import main
sys.argv = ["tlf", "serve", *sys.argv[2:]]
main()
"""


@contextmanager
def serving(model: Path, *options: str, blocked: frozenset[str] = frozenset()):
    """(process, base URL) of ``tlf serve MODEL OPTIONS`` on a free port, once ready; ``blocked``
    modules cannot be imported in it."""
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", BLOCKING, ",".join(blocked), str(model), "--port", str(port),
                                *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read()
                time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stderr.close()


@pytest.fixture
def server(exported):
    """(process, base URL) of ``tlf serve`` with small limits, ready."""
    with serving(exported[0], "--no-access-log", "--max-files", "4", "--max-body-mb", "0.2", "--timeout", "1.5", "--max-wait-ms", "2") as found:
        yield found


def raw_request(url: str, **request) -> tuple[bytes, bytes]:
    """(head, body) of a request as the bytes a client sends."""
    import httpx
    built = httpx.Request("POST", f"{url}/v1/predict", **request)
    head = f"POST /v1/predict HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in built.headers.items()
                                                                 if k.lower() != "host")
    return (head + "\r\n").encode(), built.read()


def slow_client(url: str, body: tuple[bytes, bytes], pause: float, then=lambda: None) -> bytes:
    """Send the head and half the body, wait ``pause`` s (calling ``then``), send the rest; the answer."""
    import socket
    import time
    head, content = body
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + content[: len(content) // 2])
        time.sleep(pause / 2)
        then()
        time.sleep(pause / 2)
        try:
            conn.sendall(content[len(content) // 2:])
        except OSError:
            pass  # the server answered and closed already
        return conn.recv(65536)


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_load_with_hostile_requests_keeps_answering_in_bounded_memory_without_torch(exported, server):
    """Bounded load on 127.0.0.1: 8 client threads, good requests mixed with every bad one of
    bad_requests, bombs and slow clients; two rounds, so the second shows whether memory grows."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tlf.runtime import OnnxClassifier

    process, url = server
    images, _ = shapes(8, 40, seed=9, square=False)
    expected = [p.label for p in OnnxClassifier(exported[0]).predict(images)]
    good = encoded(images[0])
    hostile = len(bad_requests(good))

    def good_request(i: int) -> None:
        pair = [images[i % 8], images[(i + 3) % 8]]
        answer = httpx.post(f"{url}/v1/predict", files=files(pair), timeout=30)
        assert answer.status_code == 200, answer.text
        assert [p["label"] for p in answer.json()["predictions"]] == [expected[i % 8], expected[(i + 3) % 8]]

    def bad_request(i: int) -> None:
        name, (kind, request) = list(bad_requests(good).items())[i % hostile]  # afresh: a body iterator is used up
        answer = httpx.post(f"{url}/v1/predict", timeout=30, **request)
        assert 400 <= answer.status_code < 500 and answer.json()["error"]["kind"] == kind, (name, answer.text)

    def slow(i: int) -> None:
        answer = slow_client(url, raw_request(url, files=files(images[:1])), pause=2.5)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]

    jobs = [(good_request, i) for i in range(60)] + [(bad_request, i) for i in range(2 * hostile)] + [(slow, i) for i in range(3)]
    jobs = [jobs[i] for i in np.random.default_rng(0).permutation(len(jobs))]
    memory = []
    for _ in range(2):
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda job: job[0](job[1]), jobs))
        memory.append(rss_mb(process.pid))
        assert httpx.get(f"{url}/healthz").status_code == 200
    assert memory[1] - memory[0] < 50, f"the server's memory grew from {memory[0]:.0f} to {memory[1]:.0f} MB"
    text = httpx.get(f"{url}/metrics").text
    assert 'tlf_requests_total{route="/v1/predict",status="200"} 120.0' in text
    loaded = {line.split()[-1] for line in open(f"/proc/{process.pid}/maps") if len(line.split()) > 5}
    assert not [path for path in loaded if "/torch/" in path], "the serving process loaded torch"
    assert any("onnxruntime" in path for path in loaded)  # the check sees Python's extension modules
    process.terminate()
    assert process.wait(timeout=30) in STOPPED, process.stderr.read()


def test_shutdown_finishes_the_request_in_flight(exported, server):
    import signal
    process, url = server
    images, _ = shapes(1, 40)
    answer = slow_client(url, raw_request(url, files=files(images)), pause=0.6,
                         then=lambda: process.send_signal(signal.SIGTERM))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert process.wait(timeout=30) in STOPPED


def test_a_run_directory_is_exported_with_the_parity_gate_then_reused(tmp_path):
    from onnx_helpers import make_run
    run = make_run(tmp_path, "resnet18", 32)
    served = load_models((str(run),))[run.name]
    exported = run / "model.onnx"
    assert served.classifier.path == exported and served.classifier.classes == json.loads((run / "classes.json").read_text())
    stamp = exported.stat().st_mtime_ns
    assert load_models((f"named={run}",))["named"].version == served.version
    assert exported.stat().st_mtime_ns == stamp  # up to date: not exported again


def test_web_page_classifies_a_picked_image(exported, server, tmp_path):
    """Headless Chromium loads the page, picks an image in its file input and shows the prediction."""
    from devtools import Browser

    from tlf.runtime import OnnxClassifier

    _, url = server
    images, _ = shapes(1, 48, seed=4)
    path = tmp_path / "picked.png"
    path.write_bytes(encoded(images[0]))
    expected = OnnxClassifier(exported[0]).predict([path], top_k=3)[0]
    browser = Browser()
    try:
        browser.call("Page.navigate", url=f"{url}/")
        assert browser.wait_for("document.getElementById('status') && document.getElementById('status').textContent == 'ready'")
        assert browser.evaluate("document.getElementById('meta').textContent").count("circle, square, stripes") == 1
        browser.pick_files("#files", [str(path)])
        labels = browser.wait_for("[...document.querySelectorAll('.card .label')].map(e => e.textContent)")
        shown = browser.evaluate("[...document.querySelectorAll('.card .prob')].map(e => e.textContent)")
        title = browser.evaluate("document.querySelector('.card h3').textContent")
    finally:
        browser.close()
    assert labels == expected.labels[:len(labels)] and len(labels) == 3
    assert shown[0] == f"{100 * expected.probability:.1f}%" and title == "picked.png"
    assert not [line for line in browser.console() if "Content Security Policy" in line or "Error" in line], browser.console()


def image_requirements() -> set[str]:
    """The packages the Dockerfile installs into the runtime image, canonical names."""
    from tlf.pluginmanager import canonical_dist_name
    text = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(part for part in text.split("&&") if "pip install" in part and "--no-deps" not in part)
    return {canonical_dist_name(word) for word in line.split("pip install", 1)[1].split()}


def test_the_runtime_image_packages_serve_a_model(exported):
    """What the Dockerfile installs is enough: tlf's other requirements (torch, timm, onnx, ...)
    cannot be imported in this server, which still answers."""
    import importlib.metadata as md
    import re

    import httpx

    from tlf.pluginmanager import canonical_dist_name
    needed = image_requirements()
    left_out = {canonical_dist_name(re.split(r"[<>=!~; \[]", req)[0]) for req in md.requires("tlf") if "extra ==" not in req} - needed
    modules = {module for module, dists in md.packages_distributions().items()
               if {canonical_dist_name(d) for d in dists} & left_out}
    assert {"torch", "timm", "albumentations", "onnx"} <= modules and "onnxruntime" not in modules
    images, _ = shapes(2, 40)
    with serving(exported[0], blocked=frozenset(modules)) as (process, url):
        answer = httpx.post(f"{url}/v1/predict", files=files(images))
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
        assert httpx.get(f"{url}/openapi.json").status_code == 200 and httpx.get(f"{url}/").status_code == 200
        process.terminate()
        log = [json.loads(line) for line in process.stderr.read().splitlines() if line.startswith("{")]
    assert {"path": "/v1/predict", "status": 200} in [{k: e[k] for k in ("path", "status")} for e in log]  # the access log


def test_workers_share_the_port(exported):
    import httpx
    images, _ = shapes(1, 40)
    with serving(exported[0], "--workers", "2", "--no-access-log") as (process, url):
        answers = [httpx.post(f"{url}/v1/predict", files=files(images)) for _ in range(4)]
        children = [pid for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == process.pid]
    assert len(children) >= 2, children  # the worker processes (and multiprocessing's resource tracker)
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.json()["model"]["version"] for a in answers}) == 1


def _parent(pid: str) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
