/* The report's popover, inlined into every report.html, whose Content-Security-Policy runs
   only this text (by its sha256). Hovering, focusing or clicking a bar shows its row of the
   iterations (or cycles) table (the same cells, cloned); a click pins it; Escape or a click
   elsewhere closes it. #pop-<row id> in the address opens one on load. Without this script
   each bar is a plain link to its row, so the page loses nothing but the popover.
   A link to something inside a folded <details> (#work-it-w0-1: a transcript) unfolds it. A
   live page reloads itself every few seconds: which <details> the reader opened or closed and
   where they scrolled are kept in the tab's sessionStorage, so a reload does not lose them. */
(function(){var d=document,P=d.getElementById("pop"),pin=null,cur=null;
d.documentElement.setAttribute("data-js","ready");
function row(b){return d.getElementById(b.getAttribute("href").slice(1))}
function hide(){P.hidden=true;if(cur)cur.classList.remove("on");cur=pin=null}
function show(b){var r=row(b);if(!r)return;if(cur)cur.classList.remove("on");cur=b;
b.classList.add("on");P.textContent="";var x=d.createElement("button");x.className="x";
x.textContent="\u00d7";x.setAttribute("aria-label","Close");x.onclick=hide;P.appendChild(x);
var h=d.createElement("p");h.className="ph";h.textContent=b.getAttribute("aria-label");
P.appendChild(h);var dl=d.createElement("dl"),hs=r.closest("table").tHead.rows[0].cells;
for(var i=0;i<r.cells.length;i++){var c=r.cells[i],t=c.textContent.trim();
if(!t||t=="\u2014"||!hs[i])continue;var dt=d.createElement("dt"),dd=d.createElement("dd");
dt.textContent=hs[i].textContent;for(var k=c.firstChild;k;k=k.nextSibling)
dd.appendChild(k.cloneNode(true));dl.appendChild(dt);dl.appendChild(dd)}P.appendChild(dl);
var a=d.createElement("a");a.href="#"+r.id;a.textContent="Its row in the table";
a.onclick=hide;P.appendChild(a);P.hidden=false;var q=b.getBoundingClientRect(),
w=P.offsetWidth,L=Math.min(q.left+scrollX,scrollX+d.documentElement.clientWidth-w-8);
P.style.left=Math.max(8,L)+"px";P.style.top=(q.bottom+scrollY+6)+"px"}
var bs=d.querySelectorAll("a.bar");for(var i=0;i<bs.length;i++){var b=bs[i];
b.setAttribute("data-title",b.title);b.removeAttribute("title");
b.addEventListener("mouseenter",function(){if(!pin)show(this)});
b.addEventListener("mouseleave",function(){if(!pin)hide()});
b.addEventListener("focus",function(){if(!pin)show(this)});
b.addEventListener("click",function(ev){ev.preventDefault();show(this);pin=this})}
d.addEventListener("keydown",function(ev){if(ev.key=="Escape")hide()});
d.addEventListener("click",function(ev){if(pin&&!P.contains(ev.target)&&
!ev.target.closest("a.bar"))hide()});
function reveal(go){var id=decodeURIComponent(location.hash.slice(1)),t=id&&d.getElementById(id);
if(!t)return;for(var e=t;e;e=e.parentElement)if(e.tagName=="DETAILS")e.open=true;
if(go)t.scrollIntoView()}
var S=null,K="oompa-report:"+location.pathname,st={},y=null;try{S=sessionStorage;
st=JSON.parse(S.getItem(K)||"{}")||{};var v=JSON.parse(S.getItem(K+"#y")||"null");
if(v&&v.h==location.hash)y=v.y}catch(e){S=null}
if(S){for(var id in st){var x=d.getElementById(id);if(x&&x.tagName=="DETAILS")x.open=!!st[id]}
d.addEventListener("toggle",function(ev){var t=ev.target;if(!t.id)return;st[t.id]=t.open;
try{S.setItem(K,JSON.stringify(st))}catch(e){}},true);
addEventListener("pagehide",function(){try{S.setItem(K+"#y",
JSON.stringify({h:location.hash,y:scrollY}))}catch(e){}})}
reveal(y===null);addEventListener("hashchange",function(){reveal(true)});
if(y!==null){scrollTo(0,y);addEventListener("load",function(){scrollTo(0,y)})}
var m=/^#pop-(.+)$/.exec(location.hash);if(m){var t=d.querySelector('a.bar[href="#'+m[1]+'"]');
if(t){var q=t.getBoundingClientRect();if(q.top<0||q.bottom>innerHeight)
t.scrollIntoView({block:"center"});show(t);pin=t}}})();
