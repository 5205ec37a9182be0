#!/usr/bin/env python3
"""Where the package locations pip is configured with hold one file, by its exact name.

    pip_file_urls.py ncnn ncnn-1.0.20261020.tar.gz

Prints one line per copy found, `url <url>` (local files as file:// URLs), in pip's order: the find-links
locations, then the index and the extra indexes. Before them, `cert <path>` when pip is told a CA bundle and
`timeout <seconds>` when it is told one. Prints nothing else on stdout and exits 0 even when nothing is found:
the caller (cmake/ncnn_sdist.cmake) downloads and checks the sha256 itself, and says what failed.

Why not `pip download`: pip builds an sdist's metadata by running its setup.py, and ncnn's stamps today's date as
the version, so pip rejects the file it asked for. Here files are only looked up by name; nothing is executed.

pip's configuration is read as pip reads it, with the standard library only (pip's own modules are private API):
the files in pip's order (global: $XDG_CONFIG_DIRS/pip/pip.conf then /etc/pip.conf; user: ~/.pip/pip.conf then
~/.config/pip/pip.conf, skipped when $PIP_CONFIG_FILE names a file; site: <sys.prefix>/pip.conf; then
$PIP_CONFIG_FILE itself), later files winning, the [download] section over [global], and PIP_* variables over
all. `pip config list -v` shows the same files. The Python running this decides sys.prefix: run it with the
Python whose pip you mean (the build passes the SDK's).
"""
import configparser
import html.parser
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

# pip's documented default for --index-url, used when nothing sets one.
PIP_DEFAULT_INDEX = "https://pypi.org/simple"


def config_files():
    env_file = os.environ.get("PIP_CONFIG_FILE")
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [os.path.join(d, "pip", "pip.conf") for d in xdg_dirs.split(os.pathsep) if d]
    files.append("/etc/pip.conf")
    if not (env_file and os.path.exists(env_file)):
        config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        files += [os.path.expanduser("~/.pip/pip.conf"), os.path.join(config_home, "pip", "pip.conf")]
    files.append(os.path.join(sys.prefix, "pip.conf"))
    if env_file:
        files.append(env_file)
    return files


def pip_settings():
    """pip's effective settings for `pip download`, keys as in pip.conf (index-url, find-links, ...)."""
    if os.environ.get("PIP_CONFIG_FILE") == os.devnull:  # pip's way of ignoring every file
        files = []
    else:
        files = config_files()
    sections = {"global": {}, "download": {}}
    for path in files:
        parser = configparser.RawConfigParser()
        parser.read(path)  # a missing file reads as empty
        for name, values in sections.items():
            if parser.has_section(name):
                values.update({k.replace("_", "-"): v for k, v in parser.items(name)})
    settings = {**sections["global"], **sections["download"]}
    for key, value in os.environ.items():
        if key.startswith("PIP_") and key != "PIP_CONFIG_FILE":
            settings[key[4:].lower().replace("_", "-")] = value
    return settings


def is_true(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y")


def canonical(name):
    """PEP 503 project name: runs of -_. become one -, lower case."""
    out, last_dash = [], False
    for ch in name.lower():
        dash = ch in "-_."
        if not (dash and last_dash):
            out.append("-" if dash else ch)
        last_dash = dash
    return "".join(out)


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href") if tag == "a" else None
        if href:
            self.hrefs.append(href)


def links_in_html(body, base):
    """(file name, url without fragment) of every link of a PEP 503 page or a find-links page."""
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    for href in parser.hrefs:
        url = urllib.parse.urljoin(base, href).partition("#")[0]
        yield urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1]), url


def read_url(url, net, json_first=False):
    """(body, final url, content type) of a page; None when it cannot be read (reported on stderr)."""
    headers = {"User-Agent": "tvm-ncnn pip_file_urls"}
    if json_first:  # PEP 691: the JSON form of a simple page, HTML accepted
        headers["Accept"] = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
    try:
        ctx, timeout = net
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=ctx,
                                    timeout=timeout) as r:
            return r.read(), r.geturl(), r.headers.get("Content-Type", "")
    except (urllib.error.URLError, OSError) as e:
        if getattr(e, "code", None) != 404:
            print(f"pip_file_urls: cannot read {url}: {e}", file=sys.stderr)
        return None


def as_url(location):
    """pip accepts plain paths where it accepts URLs."""
    return location if "://" in location else "file://" + os.path.abspath(location)


def in_find_links(location, net):
    """(file name, url) at a find-links location: a directory, or a page of links."""
    url = as_url(location)
    if url.startswith("file:"):
        path = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                yield name, as_url(os.path.join(path, name))
            return
    page = read_url(url, net)
    if page:
        yield from links_in_html(page[0], page[1])


def in_index(index, project, net):
    """(file name, url) on an index's page for a project (PEP 691 JSON or PEP 503 HTML; file:// indexes too)."""
    url = as_url(index).rstrip("/") + "/" + canonical(project) + "/"
    if url.startswith("file:"):
        url += "index.html"  # what pip reads in a file:// index
        if not os.path.isfile(urllib.request.url2pathname(urllib.parse.urlparse(url).path)):
            return  # this index does not have the project
    page = read_url(url, net, json_first=True)
    if not page:
        return
    body, base, content_type = page
    if "json" in content_type:
        for f in json.loads(body).get("files", []):
            yield f["filename"], urllib.parse.urljoin(base, f["url"]).partition("#")[0]
    else:
        yield from links_in_html(body, base)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: pip_file_urls.py PROJECT FILENAME")
    project, filename = sys.argv[1:]
    s = pip_settings()
    try:
        timeout = float(s.get("timeout") or s.get("default-timeout") or 60)
    except ValueError:
        timeout = 60.0
    # net: how pages are read (pip's CA bundle, when it has one; pip's timeout).
    net = (ssl.create_default_context(cafile=s.get("cert") or None), timeout)
    if s.get("cert"):
        print(f"cert {s['cert']}")
    print(f"timeout {timeout:g}")
    indexes = [] if is_true(s.get("no-index", "")) else [s.get("index-url") or PIP_DEFAULT_INDEX]
    indexes += s.get("extra-index-url", "").split()
    found = [url for loc in s.get("find-links", "").split() for name, url in in_find_links(loc, net)
             if name == filename]
    found += [url for index in indexes for name, url in in_index(index, project, net) if name == filename]
    for url in dict.fromkeys(found):  # once each, in order
        print(f"url {url}")
    if not found:
        where = ", ".join(s.get("find-links", "").split() + indexes) or "(no index, no find-links)"
        print(f"pip_file_urls: {filename} is not listed in: {where}", file=sys.stderr)


if __name__ == "__main__":
    main()
