// tds viz: the interactive page. Reads the JSON in #data, lays the graph out with dagre, draws
// SVG. No network: everything it needs is in the page.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const COMPOUND = 150; // displayed nodes up to which dagre lays nested boxes out itself
  const svg = document.getElementById("graph");
  const byId = new Map(D.nodes.map((n) => [n.id, n]));
  const calls = D.calls; // id (string) -> {path, type, parent, depth, leaf}
  const expanded = new Set(); // call ids drawn open (as clusters)
  const unfolded = new Set(); // fold-run heads the user opened
  let selected = null, lit = null, query = "";
  let view = { x: 0, y: 0, k: 1 };

  // ---- which node stands for each leaf node: itself, or its outermost collapsed call ----
  function startExpanded(depth) {
    expanded.clear();
    for (const [cid, c] of Object.entries(calls)) {
      if (!c.leaf && (depth === null || c.depth < depth)) expanded.add(cid);
    }
  }
  function repOf(n) {
    for (const c of n.scope) {
      const call = calls[String(c)];
      if (!call.leaf && !expanded.has(String(c))) return "c" + c;
    }
    return "n" + n.id;
  }
  function parentCluster(scopeCalls) {
    // the innermost expanded non-leaf call among the scope
    let p = null;
    for (const c of scopeCalls) {
      const call = calls[String(c)];
      if (!call.leaf && expanded.has(String(c))) p = "k" + c; else break;
    }
    return p;
  }

  // ---- the displayed graph ----
  function build() {
    const shown = new Map(); // rep id -> {id, label, sub, kind, members:[], parent, call}
    for (const n of D.nodes) {
      const r = repOf(n);
      if (!shown.has(r)) {
        if (r[0] === "c") {
          const cid = r.slice(1), c = calls[cid];
          const sc = n.scope.slice(0, n.scope.indexOf(Number(cid)));
          shown.set(r, { id: r, kind: "collapsed", call: cid, label: c.path, sub: c.type,
                         members: [], parent: parentCluster(sc) });
        } else {
          shown.set(r, { id: r, kind: n.kind, label: n.label, sub: n.kind === "module" ?
                         n.op : (n.residual ? "+" : n.op), members: [], node: n,
                         parent: parentCluster(n.kind === "module" ? n.scope.slice(0, -1) :
                                               n.scope) });
        }
      }
      shown.get(r).members.push(n.id);
    }
    for (const s of shown.values()) {
      if (s.kind === "backward") continue;
      const last = byId.get(s.members[s.members.length - 1]);
      s.shape = last.shape;
      if (s.kind === "collapsed") {
        s.paths = pathsInside(s.members);
        s.sig = [s.sub, s.members.length, s.paths,
                 ...s.members.map((m) => byId.get(m).shape + byId.get(m).op)].join("|");
      }
    }
    let edges = [];
    const seen = new Set();
    const B = D.backward;
    if (showBackward() && B && !B.error) {
      // the backward graph beside the forward one: each node is the gradient rule of one layer
      // (or of a collapsed module), and a dotted edge brings in each value the forward pass
      // saved for it
      const bRep = new Map();
      for (const n of B.nodes) {
        const r = "b" + repOf(n);
        bRep.set(n.id, r);
        if (!shown.has(r)) {
          const c = r[1] === "c" ? calls[r.slice(2)] : null;
          shown.set(r, { id: r, kind: "backward", label: "\u2207 " + (c ? c.path : n.label),
                         sub: (c ? c.type : n.op), members: [], bmembers: [], grads: [],
                         parent: null, shape: n.shape });
        }
        const s = shown.get(r);
        s.bmembers.push(n.id);
        s.grads = s.grads.concat(n.grads);
        s.shape = n.shape;
      }
      for (const e of B.edges) {
        const a = bRep.get(e.src), b = bRep.get(e.dst);
        if (a === b || seen.has(a + ">" + b)) continue;
        seen.add(a + ">" + b);
        edges.push({ src: a, dst: b, kind: "grad" });
      }
      for (const e of B.saved) {
        const f = byId.get(e.src);
        if (!f) continue;  // a value the page does not draw as a node
        const a = repOf(f), b = bRep.get(e.dst);
        if (!a || !b || seen.has(a + ">" + b)) continue;
        seen.add(a + ">" + b);
        edges.push({ src: a, dst: b, kind: "saved", what: e.what });
      }
    }
    for (const e of D.edges) {
      const a = repOf(byId.get(e.src)), b = repOf(byId.get(e.dst));
      if (a === b) continue;
      // into a collapsed block, its skip and its branch are one edge (the loop shows the skip)
      const kind = b[0] === "c" ? "" : e.kind;
      const key = a + ">" + b + kind;
      if (seen.has(key)) continue;
      seen.add(key);
      edges.push({ src: a, dst: b, kind, raw: e });
    }
    // fold runs of identical collapsed blocks, each the only consumer of the one before
    const fold = document.getElementById("fold").checked;
    const alias = new Map();
    if (fold) {
      const outs = new Map(), ins = new Map();
      for (const e of edges) {
        (outs.get(e.src) || outs.set(e.src, []).get(e.src)).push(e.dst);
        (ins.get(e.dst) || ins.set(e.dst, []).get(e.dst)).push(e.src);
      }
      for (const s of shown.values()) {
        if (s.kind !== "collapsed") continue;
        const prev = ins.get(s.id) || [];
        if (prev.length !== 1) continue;
        const p = shown.get(prev[0]);
        if (!p || p.kind !== "collapsed" || p.sig !== s.sig || p.parent !== s.parent ||
            (outs.get(p.id) || []).length !== 1) continue;
        const head = alias.get(p.id) || p.id;
        if (unfolded.has(head)) continue;
        alias.set(p.id, head); alias.set(s.id, head);
      }
      for (const [id, head] of alias) {
        const h = shown.get(head);
        h.run = h.run || [head];
        if (id !== head) { h.run.push(id); h.members = h.members.concat(shown.get(id).members); }
      }
      for (const [id, head] of alias) if (id !== head) shown.delete(id);
      edges = edges.map((e) => ({ ...e, src: alias.get(e.src) || e.src,
                                   dst: alias.get(e.dst) || e.dst }))
        .filter((e) => e.src !== e.dst);
    }
    return { shown, edges };
  }

  function pathsInside(members) {
    // paths from the block's inputs to its last node, through its members
    const set = new Set(members), count = new Map();
    for (const m of members) {
      let c = 0;
      for (const e of D.edges) if (e.dst === m) c += set.has(e.src) ? (count.get(e.src) || 0) : 1;
      count.set(m, c || 1);
    }
    return count.get(members[members.length - 1]) || 1;
  }

  // ---- layout and drawing ----
  function el(tag, attrs, parent) {
    const x = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) x.setAttribute(k, v);
    if (parent) parent.appendChild(x);
    return x;
  }
  const FILL = [["Conv", "#cfe2ff"], ["Linear", "#d3f0e8"], ["Norm", "#fff3bf"],
                ["ReLU", "#ffe0cc"], ["Tanh", "#ffe0cc"], ["Sigmoid", "#ffe0cc"],
                ["GELU", "#ffe0cc"], ["Pool", "#e5dbff"], ["Dropout", "#eeeeee"]];
  function showBackward() { return document.getElementById("backward").checked; }
  function fillOf(s) {
    if (s.kind === "backward") return s.grads.length ? "#d0bfff" : "#e5dbff";
    if (s.kind === "input") return "#b2f2bb";
    if (s.kind === "collapsed") return "#e9ecef";
    if (s.node && s.node.residual) return "#ffdeeb";
    for (const [k, c] of FILL) if ((s.sub || "").includes(k)) return c;
    return "#ffffff";
  }

  let current = null;
  function render() {
    const { shown, edges } = build();
    const fwd = [...shown.values()].filter((s) => s.kind !== "backward");
    const bwd = [...shown.values()].filter((s) => s.kind === "backward");
    const g = new dagre.graphlib.Graph({ compound: true, multigraph: true });
    g.setGraph({ rankdir: "TB", nodesep: 18, ranksep: 26, marginx: 20, marginy: 20 });
    g.setDefaultEdgeLabel(() => ({}));
    // Nested boxes: dagre's compound layout for a graph of up to COMPOUND nodes; past that it
    // is too slow (seconds for ResNet-110 fully open), so the layout is flat and each box is
    // drawn around its members' positions.
    const compound = fwd.length <= COMPOUND;
    const clusters = new Map(); // cluster id -> {label, parent, depth}
    const size = (s) => {
      const lines = nodeLines(s);
      return { width: Math.max(70, 6.2 * Math.max(...lines.map((l) => l.length)) + 16),
               height: 14 * lines.length + 10, lines };
    };
    for (const s of fwd) {
      g.setNode(s.id, size(s));
      let p = s.parent;
      let child = s.id;
      while (p) {
        const cid = p.slice(1);
        const up = calls[cid].parent;
        const parent = up !== null && calls[String(up)] && expanded.has(String(up)) ?
          "k" + up : null;
        if (!clusters.has(p)) {
          clusters.set(p, { label: calls[cid].path + " (" + calls[cid].type + ")", parent,
                            depth: calls[cid].depth });
          if (compound) g.setNode(p, { cluster: true });
        }
        if (compound) g.setParent(child, p);
        child = p;
        p = parent;
      }
    }
    const isB = (id) => id[0] === "b";
    edges.forEach((e, i) => { if (!isB(e.src) && !isB(e.dst))
      g.setEdge(e.src, e.dst, { kind: e.kind }, "e" + i); });
    dagre.layout(g);
    const pos = new Map(fwd.map((s) => [s.id, g.node(s.id)]));
    const paths = [];  // [edge, points]
    for (const e of g.edges()) paths.push([{ src: e.v, dst: e.w, kind: g.edge(e).kind },
                                           g.edge(e).points]);
    let W = g.graph().width, H = g.graph().height;
    if (bwd.length) {
      // the backward graph in a column of its own to the right, laid out bottom to top so that
      // each layer's gradient rule sits near the layer; dotted edges bring the saved values
      const gb = new dagre.graphlib.Graph({ multigraph: true });
      gb.setGraph({ rankdir: "BT", nodesep: 18, ranksep: 26, marginx: 20, marginy: 20 });
      gb.setDefaultEdgeLabel(() => ({}));
      for (const s of bwd) gb.setNode(s.id, size(s));
      edges.forEach((e, i) => { if (isB(e.src) && isB(e.dst))
        gb.setEdge(e.src, e.dst, { kind: e.kind }, "e" + i); });
      dagre.layout(gb);
      const dx = W + 140, sy = Math.max(1, H / (gb.graph().height || 1));
      const tr = (p) => ({ x: p.x + dx, y: p.y * sy });
      for (const s of bwd) {
        const n = gb.node(s.id);
        pos.set(s.id, { ...n, ...tr(n) });
      }
      for (const e of gb.edges()) paths.push([{ src: e.v, dst: e.w, kind: "grad" },
                                              gb.edge(e).points.map(tr)]);
      for (const e of edges) {
        if (e.kind !== "saved") continue;
        const a = pos.get(e.src), b = pos.get(e.dst);
        if (!a || !b) continue;
        const x0 = a.x + a.width / 2, x1 = b.x - b.width / 2;
        paths.push([e, [{ x: x0, y: a.y }, { x: (x0 + x1) / 2, y: a.y },
                        { x: (x0 + x1) / 2, y: b.y }, { x: x1, y: b.y }]]);
      }
      W = dx + gb.graph().width; H = Math.max(H, gb.graph().height * sy);
    }
    const boxes = new Map();
    if (compound) {
      for (const v of clusters.keys()) {
        const n = g.node(v);
        boxes.set(v, { x0: n.x - n.width / 2, y0: n.y - n.height / 2 - 10,
                       x1: n.x + n.width / 2, y1: n.y + n.height / 2 });
      }
    } else {
      const grow = (v, x0, y0, x1, y1) => {
        const b = boxes.get(v);
        if (!b) boxes.set(v, { x0, y0, x1, y1 });
        else { b.x0 = Math.min(b.x0, x0); b.y0 = Math.min(b.y0, y0);
               b.x1 = Math.max(b.x1, x1); b.y1 = Math.max(b.y1, y1); }
      };
      for (const s of fwd) {
        const n = pos.get(s.id);
        let pad = 6, p = s.parent;
        while (p) {
          grow(p, n.x - n.width / 2 - pad, n.y - n.height / 2 - pad - 12,
               n.x + n.width / 2 + pad, n.y + n.height / 2 + pad);
          pad += 6;
          p = clusters.get(p).parent;
        }
      }
    }
    svg.innerHTML = "";
    const root = el("g", { id: "viewport" }, svg);
    const order = [...clusters.keys()].sort((a, b) => clusters.get(a).depth -
                                                       clusters.get(b).depth);
    for (const v of order) {
      const b = boxes.get(v);
      if (!b) continue;
      const cg = el("g", { class: "cluster", "data-call": v.slice(1) }, root);
      el("rect", { x: b.x0, y: b.y0, width: b.x1 - b.x0, height: b.y1 - b.y0 }, cg);
      const t = el("text", { x: b.x0 + 6, y: b.y0 + 11 }, cg);
      t.textContent = "\u2212 " + clusters.get(v).label;
      cg.addEventListener("click", (ev) => { ev.stopPropagation(); expanded.delete(v.slice(1));
                                              render(); });
    }
    for (const [e, pts] of paths) {
      const d = e.kind === "saved" ?
        `M${pts[0].x},${pts[0].y}C${pts[1].x},${pts[1].y} ${pts[2].x},${pts[2].y} ` +
        `${pts[3].x},${pts[3].y}` :
        "M" + pts.map((p) => p.x.toFixed(1) + "," + p.y.toFixed(1)).join("L");
      const pe = el("path", { d, class: "edge" + (e.kind ? " " + e.kind : ""),
                              "data-src": e.src, "data-dst": e.dst,
                              "marker-end": "url(#arrow)" }, root);
      if (e.what) el("title", {}, pe).textContent = "saved for the backward: " + e.what;
    }
    const defs = el("defs", {}, svg);
    const mk = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
                              markerWidth: 6, markerHeight: 6, orient: "auto" }, defs);
    el("path", { d: "M0,0L10,5L0,10z", fill: "#5f6b7a" }, mk);
    for (const s of shown.values()) {
      const n = pos.get(s.id);
      const cls = ["node", s.kind === "collapsed" ? "collapsed" : "", s.run ? "folded" : "",
                   s.kind === "backward" ? "bw" : ""];
      const ng = el("g", { class: cls.join(" "), "data-id": s.id,
                           "data-label": s.label }, root);
      el("rect", { x: n.x - n.width / 2, y: n.y - n.height / 2, width: n.width,
                   height: n.height, rx: 5, fill: fillOf(s) }, ng);
      n.lines.forEach((line, i) => {
        const t = el("text", { x: n.x, y: n.y - n.height / 2 + 15 + 14 * i,
                               "text-anchor": "middle" }, ng);
        t.textContent = line;
      });
      if (s.kind === "collapsed" && s.paths > 1) {
        // the block's skip stays in view: a dashed loop beside the box
        const x = n.x + n.width / 2, y0 = n.y - n.height / 2 + 4, y1 = n.y + n.height / 2 - 4;
        el("path", { d: `M${x},${y0} C${x + 22},${y0} ${x + 22},${y1} ${x},${y1}`,
                     class: "edge skip", "marker-end": "url(#arrow)" }, ng);
      }
      ng.addEventListener("click", (ev) => { ev.stopPropagation(); clickNode(s); });
      s.box = n;
    }
    if (bwd.length) {
      const t = el("text", { x: W - 10, y: 14, "text-anchor": "end", class: "bw-title" }, root);
      t.textContent = "backward: gradients flow up from grad_output; dotted: a value saved by " +
        "the forward pass for that rule";
    }
    current = { shown, edges, g, W, H };
    applyHighlights();
    fit();  // the layout changed: show all of it
  }

  function nodeLines(s) {
    if (s.kind === "collapsed") {
      const head = s.run ? calls[shownCall(s.run[0])].path + " .. " +
        calls[shownCall(s.run[s.run.length - 1])].path : s.label;
      const lines = [(s.run ? "" : "+ ") + head, s.sub + (s.run ? " \u00d7 " + s.run.length : "") +
                     "  " + s.shape];
      if (s.paths > 1) lines.push(s.paths + " paths inside" + (s.run ? " each" : ""));
      return lines;
    }
    if (s.node && s.node.residual) return ["(+) " + s.node.residual, s.shape];
    if (s.kind === "backward") return [s.label, s.sub + "  " + s.shape].concat(
      s.grads.slice(0, 3), s.grads.length > 3 ? ["+ " + (s.grads.length - 3) + " more"] : []);
    return [s.label, s.sub + "  " + s.shape];
  }
  function shownCall(id) { return id.slice(1); }

  // ---- interaction ----
  function clickNode(s) {
    if (s.kind === "backward") { showBackwardDetails(s); return; }
    if (s.kind === "collapsed" && s.run && !unfolded.has(s.id)) {
      unfolded.add(s.id); render(); return;
    }
    if (s.kind === "collapsed") { expanded.add(s.call); render(); showDetails(s); return; }
    selected = s.id;
    const block = s.node && D.blocks.find((b) => b.add === s.node.id ||
                                          b.branch.includes(s.node.id));
    if (block) lightBlock(block);
    showDetails(s);
    applyHighlights();
  }

  function showDetails(s) {
    const box = document.getElementById("details");
    const rows = [];
    const add = (k, v) => rows.push(`<tr><td><b>${k}</b></td><td>${v}</td></tr>`);
    if (s.kind === "collapsed") {
      const c = calls[s.call];
      add("module", c.path); add("type", c.type);
      add("ops inside", s.members.length + " layers/ops");
      add("paths inside", s.paths);
    } else {
      const n = s.node;
      add(n.kind === "module" ? "module" : "node", esc(n.label));
      add(n.kind === "module" ? "type" : "op", esc(n.op));
      if (n.ops.length) add("ops", esc(n.ops.join(", ")));
      add("input shapes", esc(n.inputs.join(", ") || "-"));
      add("output shape", esc(n.shape));
      if (n.macs) add("multiply-adds", n.macs.toLocaleString("en-US"));
      for (const [k, v] of Object.entries(n.attrs)) add(esc(k), esc(v));
      for (const p of n.params) {
        const st = D.params[p];
        if (st) add(esc(p), `${st.shape}, ${st.numel.toLocaleString("en-US")} numbers<br>` +
                    `mean ${st.mean.toExponential(2)}, std ${st.std.toExponential(2)}, ` +
                    `min ${st.min.toExponential(2)}, max ${st.max.toExponential(2)}`);
      }
      add("module path", esc(n.module || "(top level)"));
    }
    box.innerHTML = `<h3>details</h3><table class="kv">${rows.join("")}</table>`;
  }
  function showBackwardDetails(s) {
    const savedIn = current.edges.filter((e) => e.dst === s.id && e.kind === "saved")
      .map((e) => esc(e.what));
    document.getElementById("details").innerHTML = `<h3>details</h3><table class="kv">` +
      `<tr><td><b>backward of</b></td><td>${esc(s.label.slice(2))} (${esc(s.sub)})</td></tr>` +
      `<tr><td><b>last value</b></td><td>${esc(s.shape)}</td></tr>` +
      `<tr><td><b>gradients out</b></td><td>${s.grads.map(esc).join("<br>") || "-"}</td></tr>` +
      `<tr><td><b>reads saved</b></td><td>${savedIn.join("<br>") || "-"}</td></tr></table>`;
  }
  function esc(t) {
    return String(t).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
                                                  '"': "&quot;" })[c]);
  }

  // ---- the residual story: a path is one choice per block (skip or branch) ----
  function lightBlock(block) {
    // a block's two ways through: its branch and its skip, the rest dimmed
    lit = { nodes: new Set([...block.branch, ...block.skip, block.add]),
            title: `${block.name}: two ways through, the branch (${block.branch.length} ` +
                   `layers) and the skip`, block: true };
  }
  function lightPath(choice) {
    // choice[b]: true = through block b's branch, false = its skip
    const off = new Set();
    D.blocks.forEach((b, i) => {
      if (choice[i]) b.skip.forEach((v) => off.add(v));
      else b.branch.forEach((v) => off.add(v));
    });
    const nodes = new Set(D.nodes.map((n) => n.id).filter((v) => !off.has(v)));
    const skipsOff = new Set(D.blocks.filter((b, i) => choice[i]).map((b) => b.add));
    const k = choice.filter(Boolean).length, T = choice.length;
    lit = { nodes, skipsOff, path: true,
            title: `a path of length ${k} (blocks passed): one of ${D.paths.binom[k] || "?"} ` +
                   `of that length; its share of all 2^${T} paths: 1/2^${T}` };
    document.getElementById("path-info").textContent = lit.title;
    document.querySelectorAll(".choices input").forEach((c, i) => { c.checked = !!choice[i]; });
    applyHighlights();
  }

  function applyHighlights() {
    if (!current) return;
    for (const ng of svg.querySelectorAll("g.node")) {
      const s = current.shown.get(ng.dataset.id);
      ng.classList.toggle("selected", ng.dataset.id === selected);
      if (s.kind === "backward") continue;
      const m = query && (s.label.toLowerCase().includes(query) ||
                          s.members.some((v) => byId.get(v).label.toLowerCase().includes(query)));
      ng.classList.toggle("match", !!m);
      const on = lit && s.members.some((v) => lit.nodes.has(v));
      ng.classList.toggle("lit", !!(lit && on));
      ng.classList.toggle("dim", !!(lit && !on));
    }
    for (const p of svg.querySelectorAll("path.edge[data-src]")) {
      const a = current.shown.get(p.dataset.src), b = current.shown.get(p.dataset.dst);
      if (!lit || a.kind === "backward" || b.kind === "backward") {
        p.classList.remove("lit", "dim"); continue;
      }
      let on = a && b && a.members.some((v) => lit.nodes.has(v)) &&
        b.members.some((v) => lit.nodes.has(v));
      if (on && p.classList.contains("skip") && lit.skipsOff &&
          b.members.some((v) => lit.skipsOff.has(v))) on = false;
      p.classList.toggle("lit", !!on);
      p.classList.toggle("dim", !on);
    }
    const info = document.getElementById("lit-info");
    if (info) info.textContent = lit && lit.block ? lit.title : "";
  }

  function pathsPanel() {
    const P = D.paths;
    const box = document.getElementById("paths");
    let h = `<h3>paths from input to output</h3><div id="count">${esc(P.text)}</div>`;
    const W = 330, H = 110, n = P.hist.length, bw = Math.max(1, (W - 30) / n);
    const top = Math.max(...P.hist.map((r) => r[1]));
    h += `<svg id="hist" width="${W}" height="${H + 30}">`;
    P.hist.forEach(([k, share, c], i) => {
      const bh = (H - 10) * share / top;
      h += `<rect data-k="${k}" x="${25 + i * bw}" y="${H - bh}" width="${bw * 0.85}" ` +
           `height="${bh}"><title>length ${k}: ${c} paths, ${(100 * share).toFixed(2)}%` +
           `</title></rect>`;
      if (n <= 20 || i % Math.ceil(n / 10) === 0)
        h += `<text x="${25 + i * bw + bw * 0.4}" y="${H + 12}" text-anchor="middle">${k}</text>`;
    });
    h += `<text x="${W / 2}" y="${H + 26}" text-anchor="middle">path length ` +
         `(${P.unit})</text><text x="2" y="10">share of paths (tallest: ` +
         `${(100 * top).toFixed(1)}%)</text></svg>`;
    if (P.T > 0) {
      h += `<h3>pick a path</h3><div class="choices">` + D.blocks.map((b, i) =>
        `<label title="${esc(b.name)}"><input type="checkbox" data-b="${i}" checked>` +
        `f${i + 1}</label>`).join("") + `</div>` +
        `<p>checked: through the block's branch; unchecked: its skip.</p>` +
        `<button id="light-path">light this path</button> ` +
        `<button id="random-path">random path of length</button> ` +
        `<input id="rand-len" type="number" min="0" max="${P.T}" value="${Math.floor(P.T / 2)}"` +
        ` style="width:50px"> <button id="clear-path">clear</button>` +
        `<p id="path-info"></p>`;
    }
    h += `<p id="lit-info" class="hint"></p>`;
    box.innerHTML = h;
    for (const r of box.querySelectorAll("#hist rect"))
      r.addEventListener("click", () => randomPath(Number(r.dataset.k)));
    const q = (s) => document.getElementById(s);
    if (P.T > 0) {
      q("light-path").onclick = () => lightPath(choices());
      q("random-path").onclick = () => randomPath(Number(q("rand-len").value));
      q("clear-path").onclick = () => { lit = null; applyHighlights(); };
    }
  }
  function choices() {
    return [...document.querySelectorAll(".choices input")].map((c) => c.checked);
  }
  function randomPath(k) {
    const T = D.blocks.length;
    if (!T) return;
    k = Math.max(0, Math.min(T, k | 0));
    const idx = [...Array(T).keys()];
    for (let i = T - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1));
                                      [idx[i], idx[j]] = [idx[j], idx[i]]; }
    const pick = new Set(idx.slice(0, k));
    document.querySelectorAll(".choices input").forEach((c, i) => { c.checked = pick.has(i); });
    for (const r of document.querySelectorAll("#hist rect"))
      r.classList.toggle("sel", Number(r.dataset.k) === k);
    lightPath(idx.map((_, i) => pick.has(i)));
  }

  // ---- pan, zoom, fit, export ----
  function applyView() {
    const vp = document.getElementById("viewport");
    if (vp) vp.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
  }
  function fit() {
    const gg = { width: current.W, height: current.H };
    const r = svg.getBoundingClientRect();
    let k = Math.min(r.width / (gg.width || 1), r.height / (gg.height || 1), 1.5);
    // a long network fitted whole would be unreadable: keep text legible, start at the top,
    // and let the reader pan down
    if (k < 0.45) k = Math.min(0.45, r.width / (gg.width || 1));
    view = { k, x: (r.width - gg.width * k) / 2, y: 10, set: true };
    applyView();
  }
  let drag = null;
  svg.addEventListener("mousedown", (e) => { drag = { x: e.clientX - view.x,
                                                      y: e.clientY - view.y }; });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; applyView();
  });
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    const f = Math.exp(-e.deltaY * 0.0015);
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    view.x = mx - (mx - view.x) * f; view.y = my - (my - view.y) * f; view.k *= f;
    applyView();
  }, { passive: false });

  function svgText() {
    const gg = { width: current.W, height: current.H };
    const copy = svg.cloneNode(true);
    copy.setAttribute("viewBox", `0 0 ${gg.width} ${gg.height}`);
    copy.setAttribute("width", gg.width); copy.setAttribute("height", gg.height);
    copy.querySelector("#viewport").removeAttribute("transform");
    const style = document.createElementNS(NS, "style");
    style.textContent = document.querySelector("style").textContent;
    copy.insertBefore(style, copy.firstChild);
    return new XMLSerializer().serializeToString(copy);
  }
  function download(name, url) {
    const a = document.createElement("a");
    a.download = name; a.href = url; document.body.appendChild(a); a.click(); a.remove();
  }
  document.getElementById("export-svg").onclick = () => {
    download("graph.svg", URL.createObjectURL(new Blob([svgText()], { type: "image/svg+xml" })));
  };
  document.getElementById("export-png").onclick = () => {
    const gg = { width: current.W, height: current.H };
    const img = new Image();
    img.onload = () => {
      const c = document.createElement("canvas");
      c.width = gg.width * 2; c.height = gg.height * 2;
      const ctx = c.getContext("2d");
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.width, c.height);
      ctx.scale(2, 2); ctx.drawImage(img, 0, 0);
      download("graph.png", c.toDataURL("image/png"));
    };
    img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svgText());
  };
  document.getElementById("search").addEventListener("input", (e) => {
    query = e.target.value.trim().toLowerCase(); applyHighlights();
  });
  document.getElementById("expand-all").onclick = () => { startExpanded(null); render(); };
  document.getElementById("collapse-all").onclick = () => { startExpanded(1); render(); };
  document.getElementById("fold").onchange = () => render();
  document.getElementById("backward").onchange = () => {
    const B = D.backward;
    document.getElementById("note").textContent = B && B.error ? B.error : (D.note || "");
    render();
  };
  document.getElementById("backward").checked = !!D.show_backward;
  document.getElementById("fit").onclick = () => fit();
  svg.addEventListener("click", () => { if (!drag) { selected = null; } });

  document.getElementById("note").textContent = D.note || "";
  startExpanded(D.depth);
  pathsPanel();
  render();
  window.tdsPage = { data: D, expanded, render, lightPath, randomPath, lightBlock: (i) => {
    lightBlock(D.blocks[i]); applyHighlights(); }, ready: true };
})();
