"""The report as one self-contained HTML file: inline CSS, inline data, an inline script drawing SVG.

No external asset is referenced (no fonts, scripts, images or styles from
anywhere): the file opens offline and can be attached to a post-mortem. The
script builds the incident timeline (one lane per agent, plus ``cluster`` and
``alerts``) and the capacity charts as SVG from the embedded JSON, then marks
``<body data-rendered="true">``; the service-level tables are plain HTML.
"""

from __future__ import annotations

import html
from typing import Any

import orjson

from kmevents import __version__

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}.muted{color:#777}.chart{display:block;margin:6px 0 14px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:8px}
.crit{fill:#c62828}.warn{fill:#ef6c00}.info{fill:#1565c0}.ev{fill:#546e7a}.bad{fill:#ad1457}
.lane-label{font-size:11px;fill:#333}.axis{stroke:#999;stroke-width:1}.legend{font-size:11px}
"""

SCRIPT = r"""
(function(){
const D = JSON.parse(document.getElementById('report-data').textContent);
const NS = 'http://www.w3.org/2000/svg';
function el(name, attrs, parent){const e=document.createElementNS(NS,name);
  for(const k in attrs){e.setAttribute(k, attrs[k]);} if(parent){parent.appendChild(e);} return e;}
function ms(t){return Date.parse(t);}
function timeline(){
  const box=document.getElementById('timeline'); const lanes=D.lanes.slice().sort((a,b)=>
    (a==='alerts'?-2:a==='cluster'?-1:0)-(b==='alerts'?-2:b==='cluster'?-1:0)||a.localeCompare(b));
  const W=1100, L=170, H=22*lanes.length+40, t0=ms(D.start), t1=Math.max(ms(D.end), t0+1);
  const svg=el('svg',{width:W,height:H,class:'chart timeline',viewBox:`0 0 ${W} ${H}`},box);
  const x=t=>L+(W-L-10)*(ms(t)-t0)/(t1-t0);
  lanes.forEach((ln,i)=>{const g=el('g',{class:'lane','data-lane':ln},svg);
    el('line',{x1:L,x2:W-10,y1:20+22*i,y2:20+22*i,class:'axis'},g);
    const tx=el('text',{x:4,y:24+22*i,class:'lane-label'},g); tx.textContent=ln;});
  D.timeline.forEach(it=>{const i=lanes.indexOf(it.lane); const cls=it.kind==='alert'?
      (it.severity==='critical'?'crit':it.severity==='warning'?'warn':'info'):(/LOST|FAILED|UNREACH|evicted|removed/.test(it.label)?'bad':'ev');
    const m=el(it.kind==='alert'?'rect':'circle', it.kind==='alert'?{x:x(it.t)-4,y:14+22*i,width:8,height:12,class:'mark '+cls}
      :{cx:x(it.t),cy:20+22*i,r:4,class:'mark '+cls}, svg);
    const tt=el('title',{},m); tt.textContent=`${it.t} ${it.label} ${it.detail||''} @${it.offset}`;});
  const ax=el('text',{x:L,y:H-6,class:'legend'},svg); ax.textContent=D.start+'  \u2192  '+D.end+' (source time)';
}
function lineChart(box, title, series, names, colors){
  const W=360,H=160,P=30; const svg=el('svg',{width:W,height:H,class:'chart capacity',viewBox:`0 0 ${W} ${H}`},box);
  const t=el('text',{x:P,y:12,class:'legend'},svg); t.textContent=title;
  let xmax=1,ymax=1; series.forEach(r=>{xmax=Math.max(xmax,r[0]); for(let j=1;j<r.length;j++){ymax=Math.max(ymax,r[j]);}});
  el('line',{x1:P,y1:H-P,x2:W-5,y2:H-P,class:'axis'},svg); el('line',{x1:P,y1:18,x2:P,y2:H-P,class:'axis'},svg);
  const yl=el('text',{x:2,y:24,class:'legend'},svg); yl.textContent=String(Math.round(ymax));
  names.forEach((n,j)=>{const pts=series.map(r=>`${(P+(W-P-5)*r[0]/xmax).toFixed(1)},${(H-P-(H-P-18)*r[j+1]/ymax).toFixed(1)}`).join(' ');
    el('polyline',{points:pts,fill:'none',stroke:colors[j],'stroke-width':1.5,class:'series','data-name':n},svg);
    const lg=el('text',{x:P+80*j,y:H-8,class:'legend',fill:colors[j]},svg); lg.textContent=n;});
}
function capacity(){
  const C=['#37474f','#2e7d32','#f9a825'];
  const roles=document.getElementById('capacity-roles');
  Object.keys(D.capacity_roles).sort().forEach(r=>{lineChart(roles,'role '+r+' cpus',D.capacity_roles[r].map(v=>[v[0],v[1],v[2]]),['allocated','offered'],C.slice(1));});
  const agents=document.getElementById('capacity-agents');
  Object.keys(D.capacity_agents).sort().slice(0,24).forEach(a=>{lineChart(agents,a+' cpus',D.capacity_agents[a].map(v=>[v[0],v[1],v[2],v[3]]),['total','allocated','offered'],C);});
}
timeline(); capacity();
document.body.setAttribute('data-rendered','true');
})();
"""


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if c is None else str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(data: dict[str, Any]) -> str:
    """The report's HTML for ``ReportData.as_dict()``."""
    lat = data["pod_latency"]
    resch = [[r["agent"], r["at"], r["seconds"] if r["seconds"] is not None else "not yet",
              ", ".join(r["rcs_waiting"]) or "-"] for r in data["reschedule"]]
    avail = [[s, f"{100 * v:.2f}%"] for s, v in sorted(data["availability"].items(), key=lambda kv: kv[1])]
    alerts = [it for it in data["timeline"] if it["kind"] == "alert"]
    # Embedded JSON must not close the script element.
    blob = orjson.dumps(data).decode().replace("</", "<\\/")
    title = f"kmevents report: {data['cluster']} {data['start']} to {data['end']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="generator" content="kmevents {__version__}"><style>{CSS}</style></head>
<body data-rendered="false">
<h1>{html.escape(title)}</h1>
<p class="muted">Source time (occurred_at) window; {data['events_in_window']:,} events, log offsets
{data['offsets'][0]}&ndash;{data['offsets'][1]}. Every figure is derived by replaying the log with the one reducer.</p>
<h2>Incident timeline</h2>
<p class="muted">One lane per agent, plus the cluster and the alerts the monitoring rules raised
({len(alerts)} transitions){'; ' + str(data['timeline_truncated']) + ' more events not drawn' if data['timeline_truncated'] else ''}.
Hover a mark for its time, details and log offset.</p>
<div id="timeline"></div>
<h2>Service levels</h2>
<h3>Pod creation to Running</h3>
{_table([[lat['count'], lat['p50'], lat['p90'], lat['p99'], lat['max']]], ['pods', 'p50 s', 'p90 s', 'p99 s', 'max s'])}
<h3>Time to reschedule after an agent is lost</h3>
{_table(resch, ['agent', 'lost at', 'seconds until its RCs were back', 'RCs still short']) if resch else '<p>No agent was lost in the window.</p>'}
<h3>Endpoint availability per service</h3>
{_table(avail, ['service', 'share of the window with endpoints']) if avail else '<p>No service.</p>'}
<h2>Capacity per role (cpus)</h2>
<div id="capacity-roles" class="grid"></div>
<h2>Capacity per agent (cpus: total, allocated, offered)</h2>
<div id="capacity-agents" class="grid"></div>
<script id="report-data" type="application/json">{blob}</script>
<script>{SCRIPT}</script>
</body></html>
"""
