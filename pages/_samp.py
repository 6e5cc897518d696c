"""The dashboard's SAMP buttons: a table or a sky position sent to TOPCAT and Aladin through ``galaxy_core.show.samp``.
Streamlit glue only, like :mod:`pages._common`; not a page.

SAMP reaches the tools on the machine that runs the dashboard (the hub its user's TOPCAT or Aladin started), so the
buttons help where the dashboard runs on one's own desktop; served to others, a click reaches the server's hub, if
any, and says that none runs otherwise.
"""

from __future__ import annotations

import streamlit as st

from galaxy_core import errors
from galaxy_core.show import samp

HELP = ("Sends over SAMP to TOPCAT, Aladin or any other tool that takes it, running on the machine that runs this "
        "dashboard: start one of them first (each starts a SAMP hub).")


def samp_button(frame_or_path, name: str, key: str) -> None:
    """A "Send to TOPCAT / Aladin" button: a click sends ``frame_or_path`` (a DataFrame, an astropy Table or a table
    file) as ``name`` and says which tools loaded it, or why none did."""
    if st.button("Send to TOPCAT / Aladin", key=key, icon=":material/send:", help=HELP):
        _report(lambda: samp.send_table(frame_or_path, name), f"“{name}”")


def samp_position_button(ra: float, dec: float, key: str) -> None:
    """A button that points TOPCAT and Aladin at RA ``ra``, Dec ``dec`` (degrees, ICRS)."""
    if st.button("Point TOPCAT / Aladin here", key=key, icon=":material/my_location:", help=HELP):
        _report(lambda: samp.send_position(ra, dec), f"RA {ra:.5f}°, Dec {dec:+.5f}°")


def _report(send, what: str) -> None:
    try:
        with st.spinner(f"Sending {what} ..."):  # a big table takes seconds to write
            reached = send()
    except samp.SampError as e:  # no hub or no tool: something for the user to start, not a fault
        st.info(str(e), icon=":material/info:")
    except (errors.DataError, OSError) as e:
        st.error(f"{what} was not sent: {e}")
    else:
        st.success(f"Sent {what} to {', '.join(reached)}.", icon=":material/check_circle:")
