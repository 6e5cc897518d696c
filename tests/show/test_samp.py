"""galaxy_core.show.samp against a real SAMP hub (``pyvo.samp.SAMPHubServer``) on 127.0.0.1 and a real client
(``pyvo.samp.SAMPIntegratedClient``) standing in for TOPCAT: it subscribes to table.load.votable and
coord.pointAt.sky, reads each table from the URL it is sent, as TOPCAT does, and replies.

Nothing on the machine is touched: HOME, the hub's lockfile (``$SAMP_HUB``) and the temporary folder are all under
tmp_path, and the hub never looks for the internet (pyvo's ``use_internet`` off). Every hub and client is stopped in
teardown, and no thread may outlive a test.
"""

from __future__ import annotations

import socket
import stat
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname
from xmlrpc.server import SimpleXMLRPCServer

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.table import Table
from pyvo.samp import SAMPHubServer, SAMPIntegratedClient, conf

# At the top: importing it makes Streamlit's own temporary folder, which belongs outside the sandbox's.
from streamlit.testing.v1 import AppTest

from galaxy_core.errors import DataError
from galaxy_core.show import samp

WAIT = 30
"""Seconds a send that should succeed may take: the receiver replies in milliseconds, but CI's two cores are shared
with a training (one reply took over 4 s there, past the default 5 s budget)."""


@pytest.fixture(autouse=True)
def sandbox(tmp_path, monkeypatch):
    """HOME, the hub's lockfile and the temporary folder under tmp_path; afterwards, no thread left running."""
    before = set(threading.enumerate())
    (tmp_path / "home").mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'samp-lock').as_uri()}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    with conf.set_temp("use_internet", False):  # else the hub looks for google.com to choose its address
        yield tmp_path
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(threading.enumerate()) - before == set()


@pytest.fixture
def hub(sandbox):
    hub = SAMPHubServer(web_profile=False, addr="127.0.0.1", lockfile=str(sandbox / "samp-lock"), pool_size=1)
    hub.start()
    yield hub
    hub.stop()


class Receiver:
    """A SAMP client like TOPCAT: takes ``mtypes``, reads each table's URL, and replies with ``status``."""

    def __init__(self, hub, name: str, mtypes=(samp.TABLE_MTYPE, samp.POSITION_MTYPE), status="samp.ok",
                 reply=True):
        self.received, self.tables, self.errors = [], [], []
        self.status, self.reply = status, reply
        self.client = SAMPIntegratedClient(name=name, addr="127.0.0.1")
        self.client.connect(hub=hub, pool_size=1)
        for mtype in mtypes:
            self.client.bind_receive_call(mtype, self.receive)

    def receive(self, private_key, sender_id, msg_id, mtype, params, extra):
        self.received.append((mtype, params, self.client.get_metadata(sender_id)["samp.name"]))
        try:
            if mtype == samp.TABLE_MTYPE:  # read now, as TOPCAT does before it replies
                self.tables.append(Table.read(url2pathname(urlparse(params["url"]).path), format="votable"))
        except Exception as e:  # noqa: BLE001 - kept for the test to show, not lost in the client's thread
            self.errors.append(e)
        if self.reply:
            error = {} if self.status == "samp.ok" else {"samp.error": {"samp.errortxt": "cannot load that"}}
            self.client.reply(msg_id, {"samp.status": self.status, "samp.result": {}, **error})

    def close(self):
        self.client.disconnect()


@pytest.fixture
def receivers(hub):
    made = []
    yield lambda *args, **kwargs: made.append(Receiver(hub, *args, **kwargs)) or made[-1]
    for r in made:
        r.close()


def predictions() -> Table:
    """A predictions-like table: ids, a sky position with units, a redshift and two answers."""
    t = Table({"GalaxyID": ["100008", "100023", "100053"], "ra": [150.1, 150.25, 210.5] * u.deg,
               "dec": [2.2, -1.5, 54.3] * u.deg, "z": [0.05, 0.11, 0.08], "Class1.1": [0.38, 0.91, 0.02],
               "Class8.6": [0.0, 0.12, 0.73]})
    t["Class1.1"].description = "smooth (fraction of volunteers)"
    return t


def test_a_table_reaches_the_client_with_its_rows_columns_and_units(receivers):
    r = receivers("TOPCAT stand-in")
    sent = predictions()
    assert samp.send_table(sent, "predictions", timeout=WAIT) == ["TOPCAT stand-in"]
    assert r.errors == []
    (mtype, params, sender), = r.received
    assert (mtype, params["name"], sender) == (samp.TABLE_MTYPE, "predictions", "Galaxy Image Classifier")
    assert params["table-id"].startswith("galaxy_core-predictions")
    got, = r.tables
    assert got.colnames == sent.colnames and len(got) == 3
    assert [got[c].unit for c in got.colnames] == [None, u.deg, u.deg, None, None, None]
    assert got["Class1.1"].description == "smooth (fraction of volunteers)"
    for c in sent.colnames:
        assert list(got[c]) == list(sent[c]), c
    # Kept after the call for a tool that reads it later, in a folder no one else may read.
    path = Path(url2pathname(urlparse(params["url"]).path))
    assert path.is_file() and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_dataframe_and_table_files_arrive_as_tables(receivers, tmp_path):
    """A frame and a CSV go through tables.write_table (the answers' descriptions and dimensionless unit, the
    position's UCDs); a FITS file keeps its units."""
    r = receivers("TOPCAT stand-in")
    frame = pd.DataFrame({"GalaxyID": ["100008", "100023"], "ra": [150.1, 150.2], "Class1.1": [0.25, 0.5]},
                         index=[7, 9])
    frame.to_csv(tmp_path / "predictions.csv", index=False)
    predictions().write(tmp_path / "predictions.fits")
    assert samp.send_table(frame, "from a frame", timeout=WAIT) == ["TOPCAT stand-in"]
    assert samp.send_table(tmp_path / "predictions.csv", "from a CSV", timeout=WAIT) == ["TOPCAT stand-in"]
    assert samp.send_table(tmp_path / "predictions.fits", "from FITS", timeout=WAIT) == ["TOPCAT stand-in"]
    assert r.errors == [] and [p["name"] for _, p, _ in r.received] == ["from a frame", "from a CSV", "from FITS"]
    for got in r.tables[:2]:
        assert got.colnames == ["GalaxyID", "ra", "Class1.1"]  # the index left out
        assert list(got["GalaxyID"]) == ["100008", "100023"]  # ids stay text
        np.testing.assert_array_equal(got["Class1.1"], [0.25, 0.5])
        assert got["ra"].meta["ucd"] == "pos.eq.ra;meta.main"
        assert got["Class1.1"].unit == u.dimensionless_unscaled
        assert got["Class1.1"].description.startswith("Galaxy Zoo 2 vote fraction: Is the galaxy simply smooth")
    got = r.tables[2]
    assert got.colnames == predictions().colnames and got["ra"].unit == u.deg and len(got) == 3


def test_a_votable_file_is_sent_as_it_is(receivers, tmp_path):
    r = receivers("TOPCAT stand-in")
    predictions().write(tmp_path / "p.vot", format="votable")
    samp.send_table(str(tmp_path / "p.vot"), "p", timeout=WAIT)
    assert r.received[0][1]["url"] == (tmp_path / "p.vot").resolve().as_uri()
    assert not list((tmp_path / "tmp").rglob("*.vot"))  # nothing written
    with pytest.raises(DataError, match="unknown table format"):
        samp.send_table(tmp_path / "p.txt", "p")


def test_a_position_in_degrees(receivers):
    r = receivers("Aladin stand-in")
    assert samp.send_position(370.5, -12.25, timeout=WAIT) == ["Aladin stand-in"]
    (mtype, params, _), = r.received
    assert mtype == samp.POSITION_MTYPE and (float(params["ra"]), float(params["dec"])) == (10.5, -12.25)
    for bad in [(10, 91), (float("nan"), 0), (0, float("inf"))]:
        with pytest.raises(DataError, match="not a sky position"):
            samp.send_position(*bad)


def test_one_recipient_by_name(receivers):
    topcat, aladin = receivers("topcat"), receivers("Aladin")
    assert samp.send_table(predictions(), "t", recipient="ALADIN", timeout=WAIT) == ["Aladin"]
    assert len(aladin.received) == 1 and topcat.received == []
    assert sorted(samp.send_table(predictions(), "t", timeout=WAIT)) == ["Aladin", "topcat"]
    with pytest.raises(samp.SampError, match="no client named ds9 on the SAMP hub takes table.load.votable"):
        samp.send_table(predictions(), "t", recipient="ds9")


def lockfile(sandbox: Path, url: str) -> None:
    (sandbox / "samp-lock").write_text(f"# SAMP lockfile\nsamp.secret=x\nsamp.hub.xmlrpc.url={url}\n")


def test_no_hub_is_a_clear_error(sandbox):
    assert not samp.hub_running()
    for send in (lambda: samp.send_table(predictions(), "t"), lambda: samp.send_position(10, 20)):
        with pytest.raises(samp.SampError, match="^no SAMP hub is running: start TOPCAT or Aladin"):
            send()
    # The lockfile of a hub that died: its port no longer answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lockfile(sandbox, f"http\\://127.0.0.1\\:{port}")  # escaped as JSAMP (TOPCAT) writes it
    assert not samp.hub_running()
    with pytest.raises(samp.SampError, match="^no SAMP hub is running"):
        samp.send_table(predictions(), "t")
    assert not list((sandbox / "tmp").rglob("*.vot"))  # nothing written for no one


def test_a_hub_that_hangs_cannot_hang_the_caller(sandbox):
    """A hub that takes the connection and never answers (a frozen TOPCAT): each request gives up in time."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # the kernel accepts connections; nothing reads them
        lockfile(sandbox, f"http://127.0.0.1:{s.getsockname()[1]}")
        t = time.monotonic()
        assert not samp.hub_running(timeout=0.5)
        with pytest.raises(samp.SampError, match="the SAMP hub gave no answer in 2.5 s"):
            samp.send_table(predictions(), "t", timeout=0.5)
        assert time.monotonic() - t < 4


def test_a_hub_that_stops_answering_in_the_middle_of_a_send(sandbox):
    """A hub that registers the sender and then never returns from callAndWait: the send gives up in time, without
    waiting as long again to unregister."""
    calls, release = [], threading.Event()
    answers = {"register": {"samp.private-key": "k", "samp.self-id": "c1", "samp.hub-id": "hub"},
               "declareMetadata": "", "getSubscribedClients": {"c2": {}}, "getMetadata": {"samp.name": "frozen"}}
    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
    for method in [*answers, "callAndWait", "unregister"]:
        def answer(*args, method=method):
            calls.append(method)
            if method == "callAndWait":
                release.wait(30)  # frozen until the test ends
            return answers.get(method, {})
        server.register_function(answer, f"samp.hub.{method}")
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        lockfile(sandbox, f"http://127.0.0.1:{server.server_address[1]}")
        t = time.monotonic()
        with pytest.raises(samp.SampError, match="the SAMP hub stopped answering"):
            samp.send_table(predictions(), "t", timeout=0.5)
        assert time.monotonic() - t < 4
        assert calls == ["register", "declareMetadata", "getSubscribedClients", "getMetadata", "callAndWait"]
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def test_no_client_for_the_message_is_a_clear_error(hub, receivers):
    assert samp.hub_running()
    with pytest.raises(samp.SampError, match="no client on the SAMP hub takes table.load.votable messages"):
        samp.send_table(predictions(), "t")
    receivers("tables only", mtypes=[samp.TABLE_MTYPE])
    with pytest.raises(samp.SampError, match="no client on the SAMP hub takes coord.pointAt.sky messages"):
        samp.send_position(10, 20)


def test_a_client_that_refuses_or_stays_silent_is_not_counted(receivers):
    receivers("refuser", status="samp.error")
    with pytest.raises(samp.SampError, match="table.load.votable message: refuser: cannot load that"):
        samp.send_table(predictions(), "t", timeout=WAIT)
    receivers("silent", reply=False)
    with pytest.raises(samp.SampError, match="silent: no answer within 1 s"):
        samp.send_table(predictions(), "t", recipient="silent", timeout=1)


def _page_with_the_buttons(path: str):
    """A page showing the two buttons of pages/_samp.py (AppTest runs this function's body as a script)."""
    import pandas as pd

    from pages._samp import samp_button, samp_position_button

    samp_button(pd.DataFrame({"GalaxyID": ["100008"], "Class1.1": [0.5]}), "predictions", key="t")
    samp_button(path, "a missing file", key="missing")
    samp_position_button(150.1, 2.2, key="p")


def test_the_dashboard_buttons_say_who_took_it_or_why_none_did(hub, receivers, tmp_path):
    at = AppTest.from_function(_page_with_the_buttons, args=(str(tmp_path / "nowhere.vot"),), default_timeout=WAIT)
    at.run()
    assert not at.exception and [b.label for b in at.button] == ["Send to TOPCAT / Aladin"] * 2 + [
        "Point TOPCAT / Aladin here"]
    at.button(key="t").click().run()
    assert "no client on the SAMP hub takes table.load.votable messages" in at.info[0].value
    r = receivers("TOPCAT stand-in")
    at.button(key="t").click().run()
    assert at.success[0].value == "Sent “predictions” to TOPCAT stand-in." and len(r.tables) == 1
    at.button(key="p").click().run()
    assert at.success[0].value == "Sent RA 150.10000°, Dec +2.20000° to TOPCAT stand-in."
    at.button(key="missing").click().run()
    assert "nowhere.vot does not exist" in at.error[0].value


def test_the_command_line_option_sends_and_never_fails_the_command(sandbox, capsys):
    """``--samp`` on a command sends the table it wrote and says so on stderr; without a hub it says why on stderr
    and returns, since the file is written; without ``--samp`` it does nothing."""
    import argparse

    from galaxy_core.cli import common

    parser = argparse.ArgumentParser()
    common.samp_option(parser)
    pd.DataFrame({"GalaxyID": ["100008"], "Class1.1": [0.5]}).to_csv(sandbox / "predictions.csv", index=False)
    with_samp, without = parser.parse_args(["--samp"]), parser.parse_args([])
    assert common.send_samp(with_samp, sandbox / "predictions.csv", "predictions.csv") == []
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"SAMP: predictions.csv not sent: {samp.NO_HUB}\n"

    hub = SAMPHubServer(web_profile=False, addr="127.0.0.1", lockfile=str(sandbox / "samp-lock"), pool_size=1)
    hub.start()
    try:
        r = Receiver(hub, "topcat")
        try:
            assert common.send_samp(without, sandbox / "predictions.csv", "predictions.csv") == []
            assert common.send_samp(with_samp, sandbox / "predictions.csv", "predictions.csv") == ["topcat"]
        finally:
            r.close()
    finally:
        hub.stop()
    assert capsys.readouterr().err.endswith("SAMP: predictions.csv sent to topcat\n")
    assert len(r.tables) == 1 and r.tables[0].colnames == ["GalaxyID", "Class1.1"]


def test_predict_on_a_catalogue_sends_its_table_with_the_catalogues_columns(receivers, sandbox, capsys):
    """``predict catalogue.csv --samp``: TOPCAT (a stand-in) receives the answers with the catalogue's RA/Dec in
    degrees and its other columns; with ``--out x.fits`` the file written is what is sent."""
    import json

    import numpy as np
    from PIL import Image

    from galaxy_core.cli import main

    folder = sandbox / "cat"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"g{i}.png")
    pd.DataFrame({"id": ["a", "b", "c"], "file": [f"g{i}.png" for i in range(3)], "ra": [10.0, 20.0, 30.0],
                  "dec": [1.0, 2.0, 3.0], "z": [0.1, 0.2, 0.3]}).to_csv(folder / "cat.csv", index=False)
    (folder / "galaxy_core.json").write_text(json.dumps({"source_fov": 1.0}))
    r = receivers("topcat")
    assert main(["predict", str(folder / "cat.csv"), "--samp"]) == 0
    assert "SAMP: predictions sent to topcat" in capsys.readouterr().err
    got = r.tables[-1]
    assert list(got["GalaxyID"]) == ["a", "b", "c"] and list(got["z"]) == [0.1, 0.2, 0.3]
    assert str(got["ra"].unit) == "deg" and "Class8.6" in got.colnames
    assert main(["predict", str(folder / "cat.csv"), "--out", str(sandbox / "answers.fits"), "--samp"]) == 0
    assert "SAMP: predictions sent to topcat" in capsys.readouterr().err and len(r.tables) == 2
