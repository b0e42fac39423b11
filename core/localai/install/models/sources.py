"""Where gallery things come from: LocalAI's URI schemes turned into URLs or local paths, and small reads.

Schemes (LocalAI's): ``http(s)://``, ``file://``, a plain local path, ``github:owner/repo/path@branch``
(also ``github://``; raw file on the branch, default ``main``), ``huggingface://owner/repo/path[@rev]``
(also ``hf://``, ``hf.co/``; the hub's ``resolve`` URL, honouring ``HF_ENDPOINT``/``HF_MIRROR``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from localai import __version__

USER_AGENT = f"localai/{__version__}"
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0


class SourceError(Exception):
    """A source could not be read: unreachable host, HTTP error, missing file. The message says which."""


def hf_endpoint() -> str:
    mirror = os.environ.get("HF_MIRROR") or os.environ.get("HF")
    if mirror:
        return mirror if mirror.startswith(("http://", "https://")) else "https://" + mirror
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _github(rest: str) -> str:
    path, _, branch = rest.partition("@")
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3:
        raise SourceError(f"github URI needs owner/repo/path, got {rest!r}")
    return f"https://raw.githubusercontent.com/{parts[0]}/{parts[1]}/{branch or 'main'}/{'/'.join(parts[2:])}"


def _huggingface(rest: str) -> str:
    parts = rest.split("/")
    if len(parts) < 3:
        raise SourceError(f"huggingface URI needs owner/repo/file, got {rest!r}")
    owner, repo, path = parts[0], parts[1], "/".join(parts[2:])
    revision = "main"
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    elif "@" in path:
        path, revision = path.rsplit("@", 1)
    return f"{hf_endpoint()}/{owner}/{repo}/resolve/{revision}/{path}"


def resolve(uri: str, base: str | None = None) -> str:
    """``uri`` as an ``http(s)://`` URL or an absolute local path; relative ones resolve against ``base``."""
    uri = uri.strip()
    if uri.startswith("github://"):
        return _github(uri[len("github://"):])
    if uri.startswith("github:"):
        return _github(uri[len("github:"):])
    for prefix in ("huggingface://", "hf://", "hf.co/"):
        if uri.startswith(prefix):
            return _huggingface(uri[len(prefix):])
    if uri.startswith("file://"):
        return str(Path(uri[len("file://"):]).absolute())
    if uri.startswith(("http://", "https://")):
        if not uri.startswith(hf_endpoint()) and uri.startswith("https://huggingface.co/"):
            return hf_endpoint() + uri[len("https://huggingface.co"):]
        return uri
    if "://" in uri:
        raise SourceError(f"unsupported URI scheme in {uri!r} (supported: http, https, file, github:, huggingface://)")
    if base is not None and not Path(uri).is_absolute():
        resolved_base = resolve(base)
        if is_url(resolved_base):
            return urljoin(resolved_base, uri)
        return str((Path(resolved_base).parent / uri).absolute())
    return str(Path(uri).absolute())


def is_url(resolved: str) -> bool:
    return resolved.startswith(("http://", "https://"))


def local_sibling(uri: str, gallery_url: str) -> str | None:
    """LocalAI's local-gallery shortcut: a ``github:`` base config found next to a local index is read from disk."""
    if not uri.startswith("github:"):
        return None
    try:
        gallery = resolve(gallery_url)
    except SourceError:
        return None
    if is_url(gallery):
        return None
    name = uri.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    candidate = Path(gallery).parent / name
    return str(candidate) if candidate.is_file() else None


def auth_headers(url: str) -> dict[str, str]:
    """``HF_TOKEN`` for the hub only (httpx drops it on a redirect to another host)."""
    token = os.environ.get("HF_TOKEN")
    if token and urlsplit(url).netloc == urlsplit(hf_endpoint()).netloc:
        return {"Authorization": f"Bearer {token}"}
    return {}


def client(**kwargs: object) -> httpx.Client:
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    return httpx.Client(follow_redirects=True, timeout=timeout, headers={"User-Agent": USER_AGENT}, **kwargs)  # type: ignore[arg-type]


def unreachable(url: str, exc: BaseException) -> SourceError:
    host = urlsplit(url).netloc or url
    return SourceError(f"cannot reach {host} ({url}): {exc or type(exc).__name__}")


def read_text(uri: str, base: str | None = None, max_bytes: int = 64 * 1024 * 1024) -> str:
    """The text at ``uri`` (a gallery index or a base config)."""
    where = resolve(uri, base)
    if not is_url(where):
        try:
            return Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceError(f"cannot read {where}: {exc.strerror or exc}") from exc
    try:
        with client() as c:
            resp = c.get(where, headers=auth_headers(where))
    except httpx.TransportError as exc:
        raise unreachable(where, exc) from exc
    if resp.status_code >= 400:
        raise SourceError(f"{where} answered HTTP {resp.status_code}")
    if len(resp.content) > max_bytes:
        raise SourceError(f"{where} is larger than {max_bytes} bytes")
    return resp.text
