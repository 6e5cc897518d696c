"""Tables and sky positions sent to TOPCAT, Aladin and other desktop tools over SAMP, the IVOA's Simple Application
Messaging Protocol (SAMP 1.3, IVOA Recommendation of 11 April 2012, Taylor et al., arXiv:1110.0528), with
``pyvo.samp``'s XML-RPC parser (astropy 8 deprecated ``astropy.samp`` in favour of ``pyvo.samp``).

Every send is one short connection (register, send, unregister), each request limited in time: a hub that hangs
cannot hang the dashboard or a command. The hub is found as SAMP 1.3's Standard Profile says: the lockfile
``$SAMP_HUB`` names (``std-lockurl:file:///...``), else ``~/.samp``, where TOPCAT and Aladin start one. A table goes
as a ``file://`` URL that a tool may read long after the call, so the VOTables written here are kept for a day.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import xmlrpc.client
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator
from urllib.request import urlopen

from galaxy_core import tables
from galaxy_core.errors import DataError

TABLE_MTYPE = "table.load.votable"
"""Load a VOTable from ``url``; optional ``table-id`` (for later messages about it) and ``name`` (its label)."""
POSITION_MTYPE = "coord.pointAt.sky"
"""Point at ``ra``, ``dec`` in degrees. Both are in the IVOA's list of SAMP MTypes (wiki.ivoa.net, SampMTypes)."""
NO_HUB = "no SAMP hub is running: start TOPCAT or Aladin (each runs a hub) and try again"
KEEP_S = 86400


class SampError(DataError):
    """A send that could not be made: no hub runs, no client takes the message, or none answered in time."""


def hub_running(timeout: float = 1) -> bool:
    """Whether a SAMP hub answers a ping: a lockfile read and one request, without registering (so no client
    flashes up in TOPCAT's list), of at most ``timeout`` seconds."""
    try:
        with _proxy(_lockfile(), timeout) as proxy:
            proxy.samp.hub.ping()
        return True
    except (SampError, OSError, xmlrpc.client.Error):
        return False


def send_table(table, name: str, recipient: str | None = None, timeout: float = 5) -> list[str]:
    """Send ``table`` as ``table.load.votable`` (with a ``table-id``, and ``name`` as its label) to every client that
    takes it (TOPCAT, Aladin), or to ``recipient`` alone (a client's name in any case, or its public id); return the
    names of those that loaded it. ``table``: a VOTable path sent as it is; another table file (``tables.FORMATS``),
    a pandas DataFrame (``tables.write_table``: no index, the answers' units, ra/dec/GalaxyID's UCDs) or an astropy
    Table (its own units, descriptions and UCDs), written as a VOTable. ``timeout`` (seconds) bounds the waits for the
    hub and the replies (at least a second per client; a silent one may still load the table later), not the
    writing. SampError when no hub runs, no client takes it or none loaded it; DataError for a bad table file."""
    if isinstance(table, (str, os.PathLike)) and not (tables.table_format(table) and Path(table).is_file()):
        raise DataError(f"table {table} does not exist")  # before asking the hub

    def params():  # written only once a client takes it
        path = _votable(table, name)
        return {"url": path.as_uri(), "table-id": f"galaxy_core-{path.stem}", "name": name}

    return _send(TABLE_MTYPE, params, recipient, timeout)


def send_position(ra_deg: float, dec_deg: float, recipient: str | None = None, timeout: float = 5) -> list[str]:
    """Point every client that takes ``coord.pointAt.sky`` (Aladin, TOPCAT), or ``recipient``, at right ascension and
    declination in degrees, ICRS (RA wrapped into [0, 360)); return the names of those that answered. DataError for a
    non-finite position or a declination outside [-90, 90], SampError as :func:`send_table` raises it."""
    ra, dec = float(ra_deg), float(dec_deg)
    if not (math.isfinite(ra) and math.isfinite(dec) and -90 <= dec <= 90):
        raise DataError(f"not a sky position: RA {ra_deg}, Dec {dec_deg} (degrees; Dec must be in [-90, 90])")
    # SAMP numbers travel as strings (SAMP 1.3, "Scalar Types"); repr keeps every digit of a float.
    return _send(POSITION_MTYPE, lambda: {"ra": repr(ra % 360.0), "dec": repr(dec)}, recipient, timeout)


class _Transport(xmlrpc.client.Transport):
    """XML-RPC giving up after ``timeout`` seconds (pyvo.samp's waits for ever), parsed by pyvo's XXE-safe parser."""

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self.timeout  # read when the socket opens
        return connection

    def getparser(self):
        from pyvo.samp.utils import get_safe_parser  # here: pyvo takes half a second to import
        return get_safe_parser(self._use_datetime, self._use_builtin_types)


def _lockfile() -> dict[str, str]:
    """The hub's lockfile, its ``key=value`` lines as a dict; SampError when there is none."""
    where = os.environ.get("SAMP_HUB", "").strip()
    if where and not where.startswith("std-lockurl:"):
        raise SampError(f"SAMP_HUB={where} names no Standard Profile hub (std-lockurl:<url of its lockfile>)")
    url = where[len("std-lockurl:"):] if where else (Path.home() / ".samp").as_uri()
    try:
        with urlopen(url, timeout=2) as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except (OSError, ValueError):
        raise SampError(NO_HUB) from None
    fields = {k.strip(): v.strip() for k, v in (x.split("=", 1) for x in lines if "=" in x and x[:1] != "#")}
    if not {"samp.secret", "samp.hub.xmlrpc.url"} <= set(fields):
        raise SampError(f"{NO_HUB} (the lockfile {url} is incomplete)")
    return fields


@contextmanager
def _proxy(fields: dict[str, str], timeout: float) -> Iterator[xmlrpc.client.ServerProxy]:
    """The hub of lockfile ``fields`` (``.samp.hub.*``, the Standard Profile's methods); closed after the block."""
    # JSAMP hubs (TOPCAT's) write the lockfile as Java properties, colons escaped: http\://127.0.0.1\:port
    proxy = xmlrpc.client.ServerProxy(fields["samp.hub.xmlrpc.url"].replace("\\", ""), allow_none=True,
                                      transport=_Transport(timeout))
    try:
        yield proxy
    finally:
        proxy("close")()


@contextmanager
def _hub(timeout: float) -> Iterator[tuple]:
    """The hub's methods and this client's private key, registered for the block only; SampError for a silent hub."""
    fields = _lockfile()
    with _proxy(fields, timeout + 2) as proxy:  # outlasts the hub's own callAndWait timeout, at most ``timeout``
        try:
            key = proxy.samp.hub.register(fields["samp.secret"])["samp.private-key"]
        except TimeoutError:
            raise SampError(f"the SAMP hub gave no answer in {timeout + 2:g} s: restart TOPCAT or Aladin") from None
        except (OSError, xmlrpc.client.Error):  # the lockfile of a hub that died
            raise SampError(NO_HUB) from None
        answering = True
        try:
            proxy.samp.hub.declareMetadata(key, {"samp.name": "Galaxy Image Classifier"})  # named in TOPCAT
            yield proxy.samp.hub, key
        except (ConnectionError, TimeoutError, xmlrpc.client.Error) as e:
            answering = not isinstance(e, TimeoutError)  # else unregistering would wait as long again
            raise SampError(f"the SAMP hub stopped answering ({e}): try again, or restart TOPCAT or Aladin") from None
        finally:
            if answering:
                with suppress(OSError, xmlrpc.client.Error):  # the hub went away meanwhile: nothing to undo
                    proxy.samp.hub.unregister(key)


def _send(mtype: str, params, recipient: str | None, timeout: float) -> list[str]:
    """Send ``params()`` as ``mtype`` to each subscribed client (``recipient`` alone) in turn with callAndWait, whose
    reply says the work was done: the names of those that replied OK or warning; SampError with reasons if none."""
    with _hub(timeout) as (hub, key):
        names = {i: hub.getMetadata(key, i).get("samp.name") or i for i in hub.getSubscribedClients(key, mtype)}
        names = {i: n for i, n in names.items() if recipient in (None, i) or recipient.lower() == n.lower()}
        if not names:
            whom = "" if recipient is None else f" named {recipient}"
            raise SampError(f"no client{whom} on the SAMP hub takes {mtype} messages: start TOPCAT or Aladin")
        message, reached, failed = {"samp.mtype": mtype, "samp.params": params()}, [], []
        deadline = time.monotonic() + timeout  # from here: writing a big table is no wait for a tool
        for client, name in names.items():
            left = max(1, int(deadline - time.monotonic()))  # SAMP timeouts are whole seconds
            try:
                reply = hub.callAndWait(key, client, message, str(left))
            except xmlrpc.client.Fault as e:  # the hub's timeout, or the client went away
                failed.append(f"{name}: no answer within {left} s, it may still be at work ({e.faultString})")
                continue
            if reply.get("samp.status") in ("samp.ok", "samp.warning"):
                reached.append(name)
            else:
                failed.append(f"{name}: {reply.get('samp.error', {}).get('samp.errortxt', 'no reason given')}")
    if not reached:
        raise SampError(f"no client took the {mtype} message: " + "; ".join(failed))
    return reached


def _votable(table, name: str) -> Path:
    """``table`` as a VOTable file: a VOTable path as it is, anything else written into this user's folder in the
    temporary folder (mode 700: no one else reads or replaces it), where files a day old are removed."""
    from astropy.table import Table  # imported here: astropy.table takes a third of a second to import

    if isinstance(table, (str, os.PathLike)):
        if tables.table_format(table) == "votable":
            return Path(table).resolve()
        table = tables.read_table(table, text_columns=("GalaxyID",))
    uid = os.getuid() if hasattr(os, "getuid") else None  # None on Windows, whose temporary folder is per user
    folder = Path(tempfile.gettempdir()) / f"galaxy_core-samp-{uid}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if uid is not None and folder.stat().st_uid != uid:  # a folder someone else made in the shared /tmp
        raise SampError(f"{folder} belongs to another user: remove it, or set TMPDIR to a folder of your own")
    for old in (f for f in folder.glob("*.vot") if time.time() - f.stat().st_mtime > KEEP_S):
        old.unlink(missing_ok=True)
    fd, path = tempfile.mkstemp(prefix=re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] + "-", suffix=".vot", dir=folder)
    os.close(fd)
    if isinstance(table, Table):  # BINARY: 3x faster to write than astropy's default TABLEDATA, a third the size
        table.write(path, format="votable", tabledata_format="binary", overwrite=True)
    else:  # a frame, or a table file read with its units and metadata
        sky = table if isinstance(table, tables.SkyTable) else tables.SkyTable(table)
        tables.write_table(sky.frame, path, units=sky.units, meta=sky.meta)
    return Path(path)
