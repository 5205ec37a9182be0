#!/usr/bin/env python3
"""Fetch one pinned source distribution from the package index pip is configured with.

    fetch_sdist.py --name ncnn --version 1.0.20261020 --sha256 <hex> --dest <dir>

Prints the path of the verified file on stdout (diagnostics go to stderr). Exit status 0 on success.

Why not `pip download`: pip builds an sdist's metadata by running its setup.py, and ncnn's stamps
today's date as the version, so pip rejects the file it asked for. Here we only look files up by name
and check the pinned sha256; nothing in the archive is executed.

Where files are looked up, in pip's own order of configuration (pip.conf, PIP_* environment, pip's
default index): the --find-links locations (local directories, or pages listing links), then
--index-url and every --extra-index-url (PEP 691 JSON or PEP 503 HTML "simple" pages). No host name
is written in this file.
"""
import argparse
import hashlib
import html.parser
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

CHUNK = 1 << 20


def log(msg):
    print(f"fetch_sdist: {msg}", file=sys.stderr)


class PipSettings:
    def __init__(self):
        self.index_urls = []   # index_url (unless no_index) then extra index urls
        self.find_links = []
        self.cert = None
        self.timeout = 60.0


def _settings_from_pip_internals():
    # pip's option parser applies pip.conf files and PIP_* variables exactly as `pip download` does.
    from pip._internal.commands import create_command  # noqa: private API, guarded by the caller
    opts, _ = create_command("download").parse_args([])
    s = PipSettings()
    if not opts.no_index:
        s.index_urls.append(opts.index_url)
    s.index_urls += list(opts.extra_index_urls or [])
    s.find_links = list(opts.find_links or [])
    s.cert = getattr(opts, "cert", None)
    s.timeout = float(getattr(opts, "timeout", 60) or 60)
    return s


def _settings_from_pip_cli():
    # Fallback when pip's internals moved: `pip config list` shows the configured values.
    s = PipSettings()
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                         capture_output=True, text=True, check=False).stdout
    values = {}
    for line in out.splitlines():
        key, sep, val = line.partition("=")
        if not sep:
            continue
        values[key.split(".", 1)[-1]] = val.strip().strip("'\"")
    env = os.environ

    def get(name):
        return env.get("PIP_" + name.upper().replace("-", "_"), values.get(name))

    no_index = (get("no-index") or "").lower() in ("1", "true", "yes", "on")
    index = get("index-url")
    if index is None:
        try:
            from pip._internal.models.index import PyPI  # pip's built-in default index
            index = PyPI.simple_url
        except Exception:
            index = None
    if index and not no_index:
        s.index_urls.append(index)
    s.index_urls += (get("extra-index-url") or "").split()
    s.find_links = (get("find-links") or "").split()
    s.cert = get("cert")
    try:
        s.timeout = float(get("timeout") or get("default-timeout") or 60)
    except ValueError:
        pass
    return s


def pip_settings():
    try:
        return _settings_from_pip_internals()
    except Exception as e:  # pip not importable here, or its internals changed
        log(f"pip internals unavailable ({e.__class__.__name__}: {e}); asking `pip config list`")
        return _settings_from_pip_cli()


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def wanted_filenames(name, version):
    stems = {name, canonical(name), canonical(name).replace("-", "_")}
    return {f"{stem}-{version}{ext}" for stem in stems for ext in (".tar.gz", ".zip")}


class _AnchorParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _local_path(url_or_path):
    if url_or_path.startswith("file:"):
        return urllib.request.url2pathname(urllib.parse.urlparse(url_or_path).path)
    if "://" not in url_or_path:
        return url_or_path
    return None


def _open(url, ctx, timeout, accept=None):
    headers = {"User-Agent": "tvm-ncnn-fetch-sdist"}
    if accept:
        headers["Accept"] = accept
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                  context=ctx, timeout=timeout)


def _links_from_html(body, base):
    parser = _AnchorParser()
    parser.feed(body.decode("utf-8", "replace"))
    for href in parser.hrefs:
        full = urllib.parse.urljoin(base, href)
        path, _, frag = full.partition("#")
        sha = frag.split("=", 1)[1] if frag.startswith("sha256=") else None
        yield urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1]), path, sha


def candidates_from_find_links(location, ctx, timeout):
    """(filename, url-or-path, advertised sha256 or None) found at one --find-links location."""
    path = _local_path(location)
    if path is not None:
        if os.path.isdir(path):
            for fn in sorted(os.listdir(path)):
                yield fn, os.path.join(path, fn), None
        elif os.path.isfile(path) and path.endswith((".html", ".htm")):
            with open(path, "rb") as f:
                yield from _links_from_html(f.read(), "file://" + os.path.abspath(path))
        return
    try:
        with _open(location, ctx, timeout) as r:
            body, base = r.read(), r.geturl()
    except (urllib.error.URLError, OSError) as e:
        log(f"skipping find-links {location}: {e}")
        return
    yield from _links_from_html(body, base)


def candidates_from_index(index, name, ctx, timeout):
    """(filename, url, advertised sha256 or None) listed on an index's project page."""
    page = index.rstrip("/") + "/" + canonical(name) + "/"
    local = _local_path(page)
    if local is not None:  # file:// index: pip reads <dir>/index.html
        html_file = os.path.join(local, "index.html")
        if not os.path.isfile(html_file):
            return
        with open(html_file, "rb") as f:
            yield from _links_from_html(f.read(), "file://" + os.path.abspath(local) + "/")
        return
    accept = ("application/vnd.pypi.simple.v1+json, "
              "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01")
    try:
        with _open(page, ctx, timeout, accept) as r:
            ctype, body, base = r.headers.get("Content-Type", ""), r.read(), r.geturl()
    except urllib.error.HTTPError as e:
        if e.code != 404:
            log(f"skipping index {index}: {e}")
        return
    except (urllib.error.URLError, OSError) as e:
        log(f"skipping index {index}: {e}")
        return
    if "json" in ctype:
        for f in json.loads(body).get("files", []):
            yield (f["filename"], urllib.parse.urljoin(base, f["url"]),
                   (f.get("hashes") or {}).get("sha256"))
    else:
        yield from _links_from_html(body, base)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def fetch_to(src, dest, expect, ctx, timeout):
    """Copy src (a local path or a URL) to dest atomically; True when the sha256 matched."""
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest) or ".", suffix=".part")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            local = _local_path(src)
            stream = open(local, "rb") if local is not None else _open(src, ctx, timeout)
            with stream:
                while True:
                    chunk = stream.read(CHUNK)
                    if not chunk:
                        break
                    h.update(chunk)
                    out.write(chunk)
        if h.hexdigest() != expect:
            log(f"sha256 mismatch for {src}: got {h.hexdigest()}, pinned {expect}")
            os.unlink(tmp)
            return False
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        return True
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--sha256", required=True, help="pinned sha256 of the sdist")
    ap.add_argument("--dest", required=True, help="download directory (cache)")
    a = ap.parse_args()
    expect = a.sha256.lower()
    names = wanted_filenames(a.name, a.version)

    # Already cached?
    for fn in sorted(names):
        cached = os.path.join(a.dest, fn)
        if os.path.isfile(cached):
            if sha256_of(cached) == expect:
                print(cached)
                return 0
            log(f"cached {cached} does not match the pinned sha256; fetching again")

    s = pip_settings()
    ctx = ssl.create_default_context(cafile=s.cert) if s.cert else ssl.create_default_context()
    sources = [("find-links", loc, candidates_from_find_links(loc, ctx, s.timeout))
               for loc in s.find_links]
    sources += [("index", idx, candidates_from_index(idx, a.name, ctx, s.timeout))
                for idx in s.index_urls]
    for kind, where, found in sources:
        for fn, src, advertised in found:
            if fn not in names:
                continue
            if advertised and advertised.lower() != expect:
                log(f"{kind} {where} lists {fn} with sha256 {advertised}, not the pinned {expect}; "
                    "skipping it")
                continue
            log(f"fetching {fn} from {kind} {where}")
            dest = os.path.join(a.dest, fn)
            try:
                if fetch_to(src, dest, expect, ctx, max(s.timeout, 300.0)):
                    print(dest)
                    return 0
            except (urllib.error.URLError, OSError) as e:
                log(f"download of {src} failed: {e}")
    where = ", ".join(s.find_links + s.index_urls) or "(pip has no index or find-links configured)"
    log(f"{a.name}=={a.version} with sha256 {expect} not found in: {where}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
