"""``kmevents report``: a self-contained HTML incident and capacity report.

    data.py    replays a window of the log and collects the timeline, SLO figures and capacity series
    html.py    renders them as one HTML file with inline SVG charts and a small inline script
"""
