"""The HTTP client python-telegram-bot uses to reach the Bot API: aiohttp instead of httpx.

Each answer costs the bot two or three Bot API calls, so the client's own CPU per call decides how many
answers one process handles. PTB's default ``HTTPXRequest`` spends most of its time in pure-Python
layers (httpx, httpcore, h11, anyio); aiohttp parses HTTP in C and already serves our purchase API, so
the bot plugs it into PTB's documented extension point, :class:`telegram.request.BaseRequest`.
Bodies are sent as JSON (the Bot API accepts it like form data), which saves encoding every field twice.
(`bench/README.md` has the measurements.)
"""

from __future__ import annotations

import ssl
import urllib.parse
import urllib.request
from typing import Any, Final

import aiohttp
import certifi
import orjson
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData

_JSON_HEADERS: Final = {"Content-Type": "application/json", "User-Agent": BaseRequest.USER_AGENT}
_FORM_HEADERS: Final = {"User-Agent": BaseRequest.USER_AGENT}


class AiohttpRequest(BaseRequest):
    """A :class:`~telegram.request.BaseRequest` on one keep-alive ``aiohttp.ClientSession``.

    Timeouts mean what they mean for PTB's own client: ``connect_timeout`` bounds opening a connection,
    ``pool_timeout`` waiting for a free one, ``read_timeout`` waiting for the answer. aiohttp has no
    separate write timeout, so ``write_timeout`` is added to the read timeout (the request is written
    before the answer can be read). A timeout raises :class:`telegram.error.TimedOut`, any other
    transport failure :class:`telegram.error.NetworkError`, exactly as PTB's callers expect.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection_pool_size",
        "_default_timeout",
        "_pool_timeout",
        "_proxies",
        "_read_timeout",
        "_session",
        "_write_timeout",
    )

    def __init__(
        self,
        *,
        connection_pool_size: int = 8,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._connection_pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._default_timeout = _client_timeout(read_timeout, write_timeout, connect_timeout, pool_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        """The read timeout used when a call gives none (PTB adds it to ``getUpdates``' long poll)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the connection pool (inside the running event loop, as aiohttp requires)."""
        self._proxies.clear()  # the environment is read again for each start
        if self._session is None or self._session.closed:
            # certifi's roots, as PTB's httpx client uses, so TLS to api.telegram.org works the same on
            # systems whose own CA store Python cannot read.
            tls = ssl.create_default_context(cafile=certifi.where())
            connector = aiohttp.TCPConnector(limit=self._connection_pool_size, ssl=tls)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._default_timeout)

    async def shutdown(self) -> None:
        """Close the connection pool; calling it twice is harmless."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Make one call; return the HTTP status and the raw body for PTB to interpret."""
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        timeout = self._timeout_for(read_timeout, write_timeout, connect_timeout, pool_timeout)
        proxy = self._proxy_for(url)
        try:
            body: bytes | aiohttp.FormData | None = None
            headers = _FORM_HEADERS
            if request_data is not None and request_data.contains_files:
                body = _multipart(request_data)
            elif request_data is not None:
                body = orjson.dumps(request_data.parameters)
                headers = _JSON_HEADERS
            response_cm = session.request(
                method, url, data=body, headers=headers, timeout=timeout, proxy=proxy
            )
            async with response_cm as response:
                return response.status, await response.read()
        except TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            detail = _without_token(str(error), url)
            raise NetworkError(f"aiohttp.{type(error).__name__}: {detail}") from None

    @staticmethod
    def parse_json_payload(payload: bytes) -> dict[str, Any]:
        """Decode Telegram's answer with orjson (a fifth of the stdlib's time per answer)."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise TelegramError("Invalid server response") from error
        if not isinstance(data, dict):
            raise TelegramError("Invalid server response")
        return data

    def _proxy_for(self, url: str) -> str | None:
        """The proxy the environment names for ``url`` (HTTPS_PROXY, NO_PROXY …, as PTB's httpx client
        reads them), looked up once per server: aiohttp's own ``trust_env`` reads the environment on
        every request, which doubled the client's CPU per call here."""
        parts = urllib.parse.urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        if origin not in self._proxies:
            host = parts.hostname or ""
            bypass = bool(host) and urllib.request.proxy_bypass(host)
            self._proxies[origin] = None if bypass else urllib.request.getproxies().get(parts.scheme)
        return self._proxies[origin]

    def _timeout_for(
        self,
        read_timeout: ODVInput[float],
        write_timeout: ODVInput[float],
        connect_timeout: ODVInput[float],
        pool_timeout: ODVInput[float],
    ) -> aiohttp.ClientTimeout:
        given = (read_timeout, write_timeout, connect_timeout, pool_timeout)
        if all(isinstance(value, DefaultValue) for value in given):
            return self._default_timeout
        return _client_timeout(
            self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout,
            self._write_timeout if isinstance(write_timeout, DefaultValue) else write_timeout,
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout,
            self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout,
        )


def _without_token(text: str, url: str) -> str:
    """Remove the bot token from an error text: some aiohttp errors quote the URL, and errors get logged."""
    for segment in urllib.parse.urlsplit(url).path.split("/"):
        if segment.startswith("bot") and len(segment) > len("bot"):
            text = text.replace(segment, "bot<token>")
    return text


def _client_timeout(
    read: float | None, write: float | None, connect: float | None, pool: float | None
) -> aiohttp.ClientTimeout:
    """Translate PTB's four timeouts into aiohttp's (``None`` means no limit in both)."""
    acquire = None if connect is None or pool is None else connect + pool
    answer = None if read is None else read + (write or 0.0)
    return aiohttp.ClientTimeout(total=None, connect=acquire, sock_connect=connect, sock_read=answer)


def _multipart(request_data: RequestData) -> aiohttp.FormData:
    """Build a multipart body for uploads: the JSON-encoded parameters plus the files."""
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form
