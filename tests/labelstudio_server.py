"""A real Label Studio server for the tests (PyPI label-studio 1.23.2, in a venv of its own, on
loopback, analytics and error reporting off): installed once into $TAAST_LABEL_STUDIO_VENV or
.cache/label-studio (git-ignored), started once per session by the ``label_studio`` fixture
(tests/conftest.py), stopped at its end. Tests skip, saying why, only where the package cannot be
installed; a server that does not start fails them."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "1.23.2"
VENV = Path(os.environ.get("TAAST_LABEL_STUDIO_VENV", Path(__file__).resolve().parents[1] / ".cache" / "label-studio"))
TOKEN = "taast0test0token0123456789"


def install() -> tuple[Path | None, str]:
    """Install label-studio into VENV unless it is there: (the executable, "") or (None, why not)."""
    exe = VENV / "bin" / "label-studio"
    if exe.exists():
        return exe, ""
    shutil.rmtree(VENV, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=120)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", f"label-studio=={VERSION}"],
                       check=True, capture_output=True, text=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(VENV, ignore_errors=True)
        return None, ((getattr(exc, "stderr", None) or "").strip().splitlines() or [str(exc)])[-1]
    return exe, ""


def _install() -> Path:
    exe, why = install()
    if exe is None:
        import pytest

        pytest.skip(f"label-studio=={VERSION} cannot be installed here: {why}")
    return exe


def call(url, method, path, body=None, raw=False):
    """One REST call with the test user's token; an HTTP error names the call and Label Studio's answer."""
    req = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            data = r.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:400]!r}") from None
    return data if raw else json.loads(data or b"null")


def start(tmp_path_factory):
    """Install (once) and start a server; yields (url, document root); stops it after."""
    exe = _install()
    root = tmp_path_factory.mktemp("ls_root")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false",
           "LATEST_VERSION_CHECK": "false", "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(root)}
    log = open(tmp_path_factory.mktemp("ls_log") / "server.log", "w")
    proc = subprocess.Popen([str(exe), "start", "--internal-host", "127.0.0.1", "--port", str(port), "--no-browser",
                             "--data-dir", str(tmp_path_factory.mktemp("ls_data")), "--username", "lead@example.com",
                             "--password", "taast-test-pw", "--user-token", TOKEN, "--enable-legacy-api-token"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url, begun = f"http://127.0.0.1:{port}", time.monotonic()
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() - begun > 240:
                log.flush()
                raise AssertionError(f"Label Studio did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(1)
        yield url, root
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def new_project(url, config: str, images) -> int:
    """A project made from a labelling config, with a Local Storage over ``images``."""
    project = call(url, "POST", "/api/projects", {"title": "taast fleet", "label_config": config})["id"]
    call(url, "POST", "/api/storages/localfiles", {"project": project, "path": str(images), "use_blob_urls": True,
                                                   "title": "frames"})
    return project


def project_tasks(url, project) -> list:
    got = call(url, "GET", f"/api/tasks?project={project}&page_size=1000")
    return got["tasks"] if isinstance(got, dict) else got


def rect(box_xywh, label: str, width: int, height: int) -> dict:
    """A rectanglelabels result as Label Studio's editor makes it (percent of the image)."""
    x, y, w, h = box_xywh
    return {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": width,
            "original_height": height, "value": {"x": 100 * x / width, "y": 100 * y / height, "width": 100 * w / width,
                                                 "height": 100 * h / height, "rotation": 0, "rectanglelabels": [label]}}


if __name__ == "__main__":  # `make test` installs it beside `make setup` (Makefile), before the tests ask for it
    exe, why = install()
    print(f"label-studio {VERSION} for the tests: {exe or 'not installed: ' + why}")
