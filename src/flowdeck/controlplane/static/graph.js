// flowdeck dashboard: pipeline graphs. Draws every <div class="dag" data-graph="JSON_ID" data-states="JSON_ID">
// from its embedded graph ({"nodes": [{id, label, kind, component}], "edges": [[from, to]]}, as
// dashboard/graph.py writes it), laid out left to right by the vendored dagre, as SVG. Nodes are
// keyboard-focusable buttons coloured by state (class state-<STATE>); activating one dispatches a
// bubbling `dag-select` CustomEvent whose detail is the node id (a double-click: `dag-open`). Without
// data-states the graph is a pipeline's, not a run's: nodes show their component instead of a state.
// API: flowdeck.graph.draw(element, graph, states|null), .setStates(element, {id: state}), .select(element, id).
"use strict";

flowdeck.graph = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const NODE_HEIGHT = 48;
  const MAX_LABEL = 36;
  const KIND_NAMES = { dag: "sub-pipeline", loop: "loop", importer: "importer", container: "" };
  const drawn = new WeakMap(); // element -> {graph, nodes: Map(id -> <g>)}
  let markers = 0;

  const measure = (() => {
    const context = document.createElement("canvas").getContext("2d");
    return (text, font) => {
      if (!context) return text.length * 8;
      context.font = font;
      return context.measureText(text).width;
    };
  })();

  function shorten(text) {
    return text.length > MAX_LABEL ? `${text.slice(0, MAX_LABEL - 1)}…` : text;
  }

  function make(tag, attributes = {}, parent = null) {
    const element = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
    if (parent) parent.appendChild(element);
    return element;
  }

  // A smooth path through dagre's edge points (a uniform B-spline, ends clamped to the points).
  function curve(points) {
    const fmt = (x, y) => `${x.toFixed(1)},${y.toFixed(1)}`;
    if (points.length < 3) return `M${points.map((p) => fmt(p.x, p.y)).join("L")}`;
    let d = `M${fmt(points[0].x, points[0].y)}`;
    const all = [...points, points[points.length - 1]];
    let [x0, y0, x1, y1] = [points[0].x, points[0].y, points[0].x, points[0].y];
    for (let i = 1; i < all.length; i++) {
      const { x, y } = all[i];
      if (i === 2) d += `L${fmt((5 * x0 + x1) / 6, (5 * y0 + y1) / 6)}`;
      if (i >= 2) {
        d += `C${fmt((2 * x0 + x1) / 3, (2 * y0 + y1) / 3)} ${fmt((x0 + 2 * x1) / 3, (y0 + 2 * y1) / 3)} `
          + `${fmt((x0 + 4 * x1 + x) / 6, (y0 + 4 * y1 + y) / 6)}`;
      }
      [x0, y0, x1, y1] = [x1, y1, x, y];
    }
    return `${d}L${fmt(x1, y1)}`;
  }

  // The node's second line: its kind and state; a graph without states (a pipeline's) shows its component.
  function subtitle(node, state, live) {
    const kind = KIND_NAMES[node.kind] || "";
    if (!live) return kind || (node.component || "").replace(/^comp-/, "");
    const shown = state ? state.toLowerCase() : "not started";
    return kind ? `${kind} · ${shown}` : shown;
  }

  function describe(node, state, live) {
    const kind = KIND_NAMES[node.kind] ? `, ${KIND_NAMES[node.kind]}` : "";
    return live ? `${node.label}${kind}: ${state || "not started"}` : `${node.label}${kind}`;
  }

  function paint(entry, id, state) {
    const group = entry.nodes.get(id);
    if (!group) return;
    const node = group.__node;
    const value = state || "NONE";
    if (group.dataset.state === value && group.dataset.live === String(entry.live)) return;
    group.dataset.live = String(entry.live);
    if (group.dataset.state) group.classList.remove(`state-${group.dataset.state}`);
    group.classList.add(`state-${value}`);
    group.dataset.state = value;
    group.querySelector(".sub").textContent = subtitle(node, state, entry.live);
    group.setAttribute("aria-label", describe(node, state, entry.live));
  }

  // `states` null: a graph with no run (nodes show their component, not a state).
  function draw(element, graph, states = null) {
    element.textContent = "";
    if (!graph || !graph.nodes.length) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "This graph has no tasks.";
      element.appendChild(empty);
      drawn.set(element, { graph, nodes: new Map(), live: states !== null });
      return;
    }
    const layout = new dagre.graphlib.Graph();
    layout.setGraph({ rankdir: "LR", nodesep: 22, ranksep: 56, marginx: 16, marginy: 16 });
    layout.setDefaultEdgeLabel(() => ({}));
    for (const node of graph.nodes) {
      const width = Math.max(measure(shorten(node.label), "600 14px system-ui, sans-serif"),
        measure(subtitle(node, "NOT STARTED", states !== null), "12px system-ui, sans-serif")) + 40;
      layout.setNode(node.id, { width: Math.max(130, Math.ceil(width)), height: NODE_HEIGHT });
    }
    for (const [from, to] of graph.edges) layout.setEdge(from, to);
    dagre.layout(layout);

    const size = layout.graph();
    const svg = make("svg", { width: Math.ceil(size.width), height: Math.ceil(size.height), role: "group",
      viewBox: `0 0 ${Math.ceil(size.width)} ${Math.ceil(size.height)}`, class: "dag-svg" });
    const marker = `dag-arrow-${++markers}`;
    const defs = make("defs", {}, svg);
    const arrow = make("marker", { id: marker, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
      markerHeight: "7", orient: "auto-start-reverse" }, defs);
    make("path", { d: "M0,0L10,5L0,10z", class: "dag-arrow" }, arrow);

    const edges = make("g", { class: "edges", "aria-hidden": "true" }, svg);
    for (const edge of layout.edges()) {
      make("path", { d: curve(layout.edge(edge).points), class: "edge", "marker-end": `url(#${marker})` }, edges);
    }
    const entry = { graph, nodes: new Map(), live: states !== null };
    const nodes = make("g", { class: "nodes" }, svg);
    // Tab order follows the drawing: by column (rank), then top to bottom.
    const ordered = [...graph.nodes].sort((a, b) => layout.node(a.id).x - layout.node(b.id).x
      || layout.node(a.id).y - layout.node(b.id).y);
    for (const node of ordered) {
      const box = layout.node(node.id);
      const group = make("g", { class: `node kind-${node.kind}`, tabindex: "0", role: "button",
        "aria-pressed": "false", transform: `translate(${box.x - box.width / 2},${box.y - box.height / 2})` }, nodes);
      group.__node = node;
      group.dataset.node = node.id;
      make("rect", { width: box.width, height: box.height, rx: "10", ry: "10", class: "box" }, group);
      make("rect", { x: "0", y: "0", width: "6", height: box.height, rx: "3", class: "bar" }, group);
      const title = make("text", { x: "18", y: "20", class: "label" }, group);
      title.textContent = shorten(node.label);
      make("text", { x: "18", y: "37", class: "sub" }, group);
      const tip = make("title", {}, group);
      tip.textContent = node.component ? `${node.label} (${node.component})` : node.label;
      entry.nodes.set(node.id, group);
    }
    drawn.set(element, entry);
    for (const node of graph.nodes) paint(entry, node.id, (states || {})[node.id]);
    element.appendChild(svg);
  }

  function setStates(element, states) {
    const entry = drawn.get(element);
    if (!entry) return;
    entry.live = true;
    for (const id of entry.nodes.keys()) paint(entry, id, states[id]);
  }

  function select(element, id) {
    const entry = drawn.get(element);
    if (!entry) return;
    for (const [nodeId, group] of entry.nodes) {
      group.classList.toggle("selected", nodeId === id);
      group.setAttribute("aria-pressed", String(nodeId === id));
    }
  }

  function activate(element, group, how) {
    const id = group.dataset.node;
    select(element, id);
    element.dispatchEvent(new CustomEvent(how, { bubbles: true, detail: id }));
  }

  // One listener per drawn element: click or Enter/Space selects; double-click "opens" (dag-open).
  function listen(element) {
    element.addEventListener("click", (event) => {
      const group = event.target.closest("g.node");
      if (group) activate(element, group, "dag-select");
    });
    element.addEventListener("dblclick", (event) => {
      const group = event.target.closest("g.node");
      if (group) activate(element, group, "dag-open");
    });
    element.addEventListener("keydown", (event) => {
      const group = event.target.closest("g.node");
      if (group && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        activate(element, group, "dag-select");
      }
    });
  }

  for (const element of document.querySelectorAll(".dag[data-graph]")) {
    listen(element);
    const states = element.dataset.states ? flowdeck.data(element.dataset.states) || {} : null;
    draw(element, flowdeck.data(element.dataset.graph), states);
  }

  return { draw, setStates, select };
})();
