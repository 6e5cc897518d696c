"""The dashboard's pages. app.py lists them with st.navigation; _common.py holds what they share and is no page."""
