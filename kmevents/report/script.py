"""The report page's inline script: draws the timeline and the capacity charts as SVG from the embedded JSON.

What it draws, and the classes the rendering test looks for:

    svg.timeline                the incident timeline
      g.legend > g.legend-item  one per kind of mark (data-key), its glyph and its meaning
      g.time-axis               line.grid per tick, text.tick (HH:MM in the report's zone) top and bottom,
                                text.tick-date where the date changes, text.axis-caption naming the zone
      g.lane[data-lane]         one per lane (timeline.py), text.lane-label
      path.failover.master      a master failover (with line.failover-guide across every lane)
      path.failover.scheduler   a k8sm leader change; path.elected a first election
      rect.master-down          the master unreachable
      rect.alert.crit|warn|info an alert, from firing to resolved (or the window's end)
      rect.down.removed|...     an agent's down period
      circle.mark.bad|ev        the events of one lane in one slice of the window (r grows with the count)
    svg.capacity                a capacity chart (roles; agents a page at a time, #agents-page=N, with
                                rect.down where the agent was down)

Every time is written in the report's zone (``D.zone.name``) through Intl.DateTimeFormat.
Then ``<body data-rendered="true">``.
"""

SCRIPT = r"""
(function(){
const D = JSON.parse(document.getElementById('report-data').textContent);
const NS = 'http://www.w3.org/2000/svg';
function el(name, attrs, parent){const e=document.createElementNS(NS,name);
  for(const k in attrs){e.setAttribute(k, attrs[k]);} if(parent){parent.appendChild(e);} return e;}
function tip(e, text){const t=el('title',{},e); t.textContent=text; return e;}
function ms(t){return Date.parse(t);}
let FMT=null;
try{FMT=new Intl.DateTimeFormat('en-GB',{timeZone:D.zone.name,year:'numeric',month:'2-digit',day:'2-digit',
  hour:'2-digit',minute:'2-digit',second:'2-digit',hour12:false,timeZoneName:'short'});}catch(e){FMT=null;}
function fmt(t){return FMT?FMT.format(new Date(ms(t))):t;}
const T0=ms(D.start), T1=Math.max(ms(D.end), T0+1000);
const SEV={critical:'crit',warning:'warn',info:'info'};
const W=1150, L=210, R=12, LH=16, GAP=8;
function X(t){return L+(W-L-R)*Math.min(1,Math.max(0,(ms(t)-T0)/(T1-T0)));}
function triangle(x,y,s){return `M${x-s},${y-s} L${x+s},${y-s} L${x},${y+s} Z`;}
function diamond(x,y,s){return `M${x},${y-s} L${x+s},${y} L${x},${y+s} L${x-s},${y} Z`;}
const LEGEND=[
  ['master-failover','master failover (and its dashed line)',(g,x,y)=>{el('path',{d:triangle(x,y,5),class:'failover master'},g);}],
  ['scheduler-change','k8sm scheduler leader change',(g,x,y)=>{el('path',{d:diamond(x,y,5),class:'failover scheduler'},g);}],
  ['elected','first election (no failover)',(g,x,y)=>{el('path',{d:triangle(x,y,4),class:'elected'},g);}],
  ['master-down','master unreachable (heartbeats missed)',(g,x,y)=>{el('rect',{x:x-6,y:y-5,width:12,height:10,class:'master-down'},g);}],
  ['alert-critical','alert firing: critical',(g,x,y)=>{el('rect',{x:x-6,y:y-5,width:12,height:10,class:'alert crit'},g);}],
  ['alert-warning','alert firing: warning',(g,x,y)=>{el('rect',{x:x-6,y:y-5,width:12,height:10,class:'alert warn'},g);}],
  ['alert-info','alert firing: info',(g,x,y)=>{el('rect',{x:x-6,y:y-5,width:12,height:10,class:'alert info'},g);}],
  ['agent-removed','agent removed (lost or drained)',(g,x,y)=>{el('rect',{x:x-6,y:y-5,width:12,height:10,class:'down removed'},g);}],
  ['agent-draining','agent draining',(g,x,y)=>{el('rect',{x:x-6,y:y-5,width:12,height:10,class:'down draining'},g);}],
  ['agent-deactivated','agent deactivated',(g,x,y)=>{el('rect',{x:x-6,y:y-5,width:12,height:10,class:'down deactivated'},g);}],
  ['event-bad','lost or failed task, eviction, removal',(g,x,y)=>{el('circle',{cx:x,cy:y,r:4,class:'mark bad'},g);}],
  ['event','other notable event',(g,x,y)=>{el('circle',{cx:x,cy:y,r:4,class:'mark ev'},g);}],
];
function timeline(){
  const box=document.getElementById('timeline');
  const lanes=D.lanes; const per=4, itemW=(W-8)/per, legendH=Math.ceil(LEGEND.length/per)*18+6;
  const axisTop=legendH+30;
  const ys=[]; let y=axisTop+8, prev=null;
  lanes.forEach(ln=>{if(prev!==null&&ln.group!==prev){y+=GAP;} ys.push(y); y+=LH; prev=ln.group;});
  const lanesBottom=y, H=y+30;
  const svg=el('svg',{width:W,height:H,class:'chart timeline',viewBox:`0 0 ${W} ${H}`},box);
  const lg=el('g',{class:'legend'},svg);
  LEGEND.forEach(([key,text,glyph],i)=>{const g=el('g',{class:'legend-item','data-key':key},lg);
    const x=4+(i%per)*itemW, yy=10+Math.floor(i/per)*18; glyph(g,x+8,yy);
    const t=el('text',{x:x+20,y:yy+4},g); t.textContent=text;});
  const ax=el('g',{class:'time-axis'},svg);
  const cap=el('text',{x:4,y:axisTop-4,class:'axis-caption'},ax); cap.textContent='time ('+D.zone.caption+')';
  D.axis.forEach(tk=>{const x=X(tk.t), anchor=x>W-R-30?'end':x<L+30?'start':'middle';  // labels stay on the page
    el('line',{x1:x,x2:x,y1:axisTop,y2:lanesBottom,class:'grid'},ax);
    const t=el('text',{x:x,y:axisTop-4,class:'tick','text-anchor':anchor},ax); t.textContent=tk.label;
    const b=el('text',{x:x,y:lanesBottom+14,class:'tick','text-anchor':anchor},ax); b.textContent=tk.label;
    if(tk.date){const d=el('text',{x:x,y:axisTop-17,class:'tick-date','text-anchor':anchor},ax); d.textContent=tk.date;}});
  const index={};
  lanes.forEach((ln,i)=>{index[ln.id]=i; const g=el('g',{class:'lane','data-lane':ln.id,'data-group':ln.group},svg);
    el('rect',{x:0,y:ys[i],width:W,height:LH,class:'lane-bg '+(i%2?'odd':'even')},g);
    const tx=el('text',{x:4,y:ys[i]+LH-4,class:'lane-label'+(ln.severity?' '+SEV[ln.severity]:'')},g);
    tx.textContent=ln.label; if(ln.hosts){tip(tx, ln.hosts.join(', '));}});
  function laneY(id){const i=index[id]; return i===undefined?null:ys[i];}
  const fy=laneY('failovers');
  D.master_down.forEach(p=>{const x=X(p.from); tip(el('rect',{x:x,y:fy+2,width:Math.max(2,X(p.to)-x),height:LH-4,class:'master-down'},svg),
    `master unreachable ${fmt(p.from)} to ${p.open?'the end of the window':fmt(p.to)} (${p.why||''})`);});
  D.alerts.forEach(a=>{const y0=laneY('alert:'+a.rule); if(y0===null){return;} const x=X(a.from);
    tip(el('rect',{x:x,y:y0+3,width:Math.max(2,X(a.to||D.end)-x),height:LH-6,class:'alert '+SEV[a.severity]},svg),
      `${a.rule} ${a.key}: ${a.summary}\n${fmt(a.from)} to ${a.to?fmt(a.to):'still firing at the end of the window'} (offset ${a.offset})`);});
  D.agents.forEach(a=>{const y0=laneY(a.host); if(y0===null){return;}
    a.down.forEach(p=>{const x=X(p.from); tip(el('rect',{x:x,y:y0+2,width:Math.max(2,X(p.to)-x),height:LH-4,class:'down '+p.status},svg),
      `${a.host} ${p.status}${p.why?' ('+p.why+')':''}: ${fmt(p.from)} to ${p.open?'the end of the window':fmt(p.to)}`);});});
  D.marks.forEach(m=>{const y0=laneY(m.lane); if(y0===null){return;}
    tip(el('circle',{cx:X(m.t),cy:y0+LH/2,r:Math.min(7,2.5+Math.log2(m.n)),class:'mark '+m.cls},svg),
      `${fmt(m.t)} ${m.n>1?m.n+' events: ':''}${m.label} (first at offset ${m.offset})`);});
  D.leaders.forEach(f=>{const x=X(f.t), yc=fy+LH/2;
    if(f.kind==='master'&&f.failover){el('line',{x1:x,x2:x,y1:axisTop,y2:lanesBottom,class:'failover-guide'},svg);}
    const shape=f.kind==='master'?triangle(x,yc,f.failover?6:4):diamond(x,yc,f.failover?6:4);
    tip(el('path',{d:shape,class:f.failover?'failover '+f.kind:'elected'},svg), `${fmt(f.t)} ${f.label} (offset ${f.offset})`);});
}
function lineChart(box, title, series, names, colors, down){
  const CW=360,CH=170,P=34,B=36; const svg=el('svg',{width:CW,height:CH,class:'chart capacity',viewBox:`0 0 ${CW} ${CH}`},box);
  const t=el('text',{x:P,y:12,class:'chart-title'},svg); t.textContent=title;
  const span=(T1-T0)/1000; let ymax=1; series.forEach(r=>{for(let j=1;j<r.length;j++){ymax=Math.max(ymax,r[j]);}});
  const x=s=>P+(CW-P-8)*Math.min(1,Math.max(0,s/span)), yv=v=>CH-B-(CH-B-20)*v/ymax;
  (down||[]).forEach(p=>{const a=x((ms(p.from)-T0)/1000); tip(el('rect',{x:a,y:20,width:Math.max(1,x((ms(p.to)-T0)/1000)-a),
    height:CH-B-20,class:'down '+p.status},svg), p.status+(p.why?' ('+p.why+')':''));});
  el('line',{x1:P,y1:CH-B,x2:CW-8,y2:CH-B,class:'axis'},svg); el('line',{x1:P,y1:20,x2:P,y2:CH-B,class:'axis'},svg);
  const yl=el('text',{x:P-4,y:24,class:'tick','text-anchor':'end'},svg); yl.textContent=String(Math.round(ymax));
  const y0=el('text',{x:P-4,y:CH-B,class:'tick','text-anchor':'end'},svg); y0.textContent='0';
  const every=Math.max(1,Math.ceil(D.axis.length/4));
  D.axis.forEach((tk,i)=>{if(i%every){return;} const s=(ms(tk.t)-T0)/1000, xx=x(s);
    el('line',{x1:xx,x2:xx,y1:CH-B,y2:CH-B+4,class:'axis'},svg);
    const l=el('text',{x:xx,y:CH-B+15,class:'tick','text-anchor':'middle'},svg); l.textContent=tk.label;});
  names.forEach((n,j)=>{const pts=series.map(r=>`${x(r[0]).toFixed(1)},${yv(r[j+1]).toFixed(1)}`).join(' ');
    el('polyline',{points:pts,fill:'none',stroke:colors[j],'stroke-width':1.5,class:'series','data-name':n},svg);
    const lg=el('text',{x:P+80*j,y:CH-6,class:'chart-legend',style:'fill:'+colors[j]},svg); lg.textContent=n;});
  if(down&&down.length){const d=el('text',{x:P+240,y:CH-6,class:'chart-legend'},svg); d.textContent='shaded: down';}
}
const C=['#37474f','#2e7d32','#f9a825'];
function natural(a,b){return a.localeCompare(b,undefined,{numeric:true});}
function capacity(){
  const roles=document.getElementById('capacity-roles');
  Object.keys(D.capacity_roles).sort(natural).forEach(r=>{lineChart(roles,'role '+r+' cpus',D.capacity_roles[r].map(v=>[v[0],v[1],v[2]]),['allocated','offered'],C.slice(1));});
  agentsPage();
}
const PAGE=24;
function agentsPage(){
  const hosts=Object.keys(D.capacity_agents).sort(natural), pages=Math.max(1,Math.ceil(hosts.length/PAGE));
  const m=/agents-page=(\d+)/.exec(location.hash); const page=Math.min(pages,Math.max(1,m?parseInt(m[1],10):1));
  const box=document.getElementById('capacity-agents'); box.textContent='';
  const shown=hosts.slice((page-1)*PAGE,page*PAGE);
  const downs={}; D.agents.forEach(a=>{downs[a.host]=a.down;});
  shown.forEach(a=>{lineChart(box,a+' cpus',D.capacity_agents[a].map(v=>[v[0],v[1],v[2],v[3]]),['total','allocated','offered'],C,downs[a]);});
  const info=document.getElementById('agents-page-info');
  info.textContent=hosts.length?`agents ${(page-1)*PAGE+1}\u2013${(page-1)*PAGE+shown.length} of ${hosts.length} (page ${page} of ${pages})`:'no agent';
  info.setAttribute('data-page',page); info.setAttribute('data-pages',pages);
  document.getElementById('agents-prev').disabled=page<=1; document.getElementById('agents-next').disabled=page>=pages;
  document.getElementById('agents-prev').onclick=()=>{location.hash='agents-page='+(page-1);};
  document.getElementById('agents-next').onclick=()=>{location.hash='agents-page='+(page+1);};
}
window.addEventListener('hashchange',agentsPage);
timeline(); capacity();
document.body.setAttribute('data-rendered','true');
})();
"""
