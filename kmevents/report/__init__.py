"""``kmevents report``: a self-contained HTML incident and capacity report, or its data as JSON.

    data.py      replays a window of the log and collects the timeline, SLO figures and capacity series
    timeline.py  the timeline's lanes (failovers, one per alert rule, cluster, every agent), marks, periods
    axis.py      the time axis: ticks at round times of the reader's zone (--tz), times written in it
    html.py      renders them as one HTML file: facts, timeline, service levels, every agent, capacity
    script.py    the page's inline script drawing the SVG (what it draws, with the classes tests look for)
"""
