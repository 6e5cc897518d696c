"""What people see and take away: statistics, figures, sky positions, SAMP and the dashboard's access rules.

``explore`` (counts, sizes, histograms, correlations, typical galaxies), ``figures`` (every plotly figure),
``skyviews`` (RA/Dec as text, sky-viewer links, the sky map, galleries), ``samp`` (tables and positions sent to
TOPCAT and Aladin) and ``access`` (what a dashboard user may read and upload).
"""
