"""deploy/nginx/feeds.conf passes `nginx -t` and serves feed files as readers need them:
their media types, ETag with 304 on If-None-Match, Last-Modified, gzip, a short cache.

nginx runs for real (Debian's nginx-light; .ci/run installs it). The server block is the
repository's file, with only its root (the container's /srv/feeds) and port rewritten.
"""

from __future__ import annotations

import getpass
import gzip
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, wait_until

CONF = REPO / "deploy" / "nginx" / "feeds.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FILES = {
    "all.rss": ("application/rss+xml", b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
                + b"<item><title>Story</title></item>" * 40 + b"</channel></rss>\n"),
    "all.atom": ("application/atom+xml", b'<?xml version="1.0" encoding="utf-8"?>\n'
                 b'<feed xmlns="http://www.w3.org/2005/Atom">' + b"<entry><title>S</title></entry>" * 40 + b"</feed>\n"),
    "all.json": ("application/feed+json", b'{"version": "https://jsonfeed.org/version/1.1", "items": ['
                 + b'{"id": "1", "title": "Story"},' * 40 + b'{"id": "2"}]}\n'),
    "news-sitemap.xml": ("application/xml", b'<?xml version="1.0" encoding="UTF-8"?>\n<urlset>'
                         + b"<url><loc>https://n.example/a</loc></url>" * 40 + b"</urlset>\n"),
}

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx not installed (apt-get install nginx-light)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _compose_root() -> str:
    """Where the compose file mounts the feeds volume in the nginx container."""
    feeds = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["feeds"]
    return next(v.split(":")[1] for v in feeds["volumes"] if v.startswith("feeds:"))


def _configure(tmp_path: Path, port: int) -> Path:
    text = CONF.read_text()
    root = _compose_root()
    assert f"root {root};" in text and "listen 8080;" in text
    server = (text.replace(f"root {root};", f"root {tmp_path / 'feeds'};")
              .replace("listen 8080;", f"listen 127.0.0.1:{port};").replace("listen [::]:8080;", ""))
    (tmp_path / "feeds.conf").write_text(server)
    run = tmp_path / "run"
    run.mkdir()
    main = tmp_path / "nginx.conf"
    # What the nginx image's own nginx.conf provides around conf.d/*.conf, in a temp dir.
    main.write_text(f"""
user {getpass.getuser()};
worker_processes 1;
daemon off;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    sendfile on;
    include {tmp_path / 'feeds.conf'};
}}
""")
    return main


@pytest.fixture
def nginx(tmp_path):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    for name, (_, body) in FILES.items():
        (feeds / name).write_bytes(body)
    (feeds / ".all.rss.x1.tmp").write_bytes(b"half-written")
    port = _free_port()
    main = _configure(tmp_path, port)
    check = subprocess.run([NGINX, "-t", "-c", str(main), "-p", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-c", str(main), "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(base + "/healthz", timeout=2).status == 200
        except OSError:
            return proc.poll() is not None
    wait_until(up, 30, "nginx to listen")
    assert proc.poll() is None, proc.stderr.read().decode()
    yield base
    proc.send_signal(signal.SIGQUIT)  # graceful stop of the master we started (its workers follow)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _get(url: str, headers: dict | None = None):
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5)
        return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_the_configuration_passes_nginx_t(tmp_path):
    main = _configure(tmp_path, _free_port())
    (tmp_path / "feeds").mkdir()
    result = subprocess.run([NGINX, "-t", "-c", str(main), "-p", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_feed_kind_is_served_with_its_type_and_revalidates_with_a_304(nginx, name):
    media_type, body = FILES[name]
    status, headers, content = _get(f"{nginx}/{name}")
    assert status == 200 and content == body
    assert headers["Content-Type"].split(";")[0] == media_type
    assert headers["ETag"] and headers["Last-Modified"]
    assert "max-age=60" in headers["Cache-Control"]
    again, headers_304, content_304 = _get(f"{nginx}/{name}", {"If-None-Match": headers["ETag"]})
    assert again == 304 and content_304 == b""
    assert _get(f"{nginx}/{name}", {"If-Modified-Since": headers["Last-Modified"]})[0] == 304


@pytest.mark.parametrize("name", sorted(FILES))
def test_gzip_when_asked(nginx, name):
    status, headers, content = _get(f"{nginx}/{name}", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(content) == FILES[name][1]
    assert "Accept-Encoding" in headers["Vary"]
    # A compressed answer's ETag (weak) still revalidates.
    assert _get(f"{nginx}/{name}", {"Accept-Encoding": "gzip", "If-None-Match": headers["ETag"]})[0] == 304


def test_temporary_and_missing_files_are_not_served(nginx):
    assert _get(f"{nginx}/.all.rss.x1.tmp")[0] == 404
    assert _get(f"{nginx}/nope.rss")[0] == 404
    assert _get(f"{nginx}/")[0] in (403, 404)  # no directory listing
