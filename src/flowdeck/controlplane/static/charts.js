// flowdeck charts: draws every <div class="chart" data-chart="JSON_ID"> with the vendored uPlot
// (load /static/vendor/uPlot.iife.min.js first, and /static/vendor/uPlot.min.css + /static/charts.css).
// The embedded JSON: {"type": "line"|"bar", "title", "xLabel", "yLabel", "x": [numbers or labels],
//   "series": [{"label", "values": [numbers or null], "dash": bool (optional)}],
//   "xRange"/"yRange": [min, max] (optional)}.
// Bar charts (and line charts over labels) put one slot per x; several bar series stand side by side.
// flowdeck.charts.draw(element) draws one more element (e.g. one a page added later).
"use strict";

flowdeck.charts = (() => {
  const PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bc4c00", "#1b7c83", "#57606a"];
  const CHANCE = "#8c959f";
  const HEIGHT = 300;
  const AXIS = { stroke: "#57606a", grid: { stroke: "#eaeef2", width: 1 }, ticks: { stroke: "#d0d7de", width: 1 } };

  const format = (v) => (v == null ? "–" : Number.isInteger(v) ? String(v) : String(+v.toPrecision(4)));
  const short = (text) => (text.length > 16 ? `${text.slice(0, 15)}…` : text);

  // Bars of series k (of n) fill their share of the middle 80 % of each slot.
  function bars(k, n) {
    const group = 0.8;
    const width = group / n;
    return uPlot.paths.bars({
      disp: {
        x0: { unit: 1, values: (u) => u.data[0].map((i) => i - group / 2 + k * width) },
        size: { unit: 1, values: () => [width] },
      },
    });
  }

  // A value range that includes 0 (bars grow from the axis), with a little room above.
  function fromZero(_u, min, max) {
    const low = Math.min(0, min ?? 0);
    const high = Math.max(0, max ?? 0);
    const pad = (high - low) * 0.08 || 1;
    return [low < 0 ? low - pad : 0, high > 0 ? high + pad : 0];
  }

  function options(spec, width) {
    const labels = spec.x.map(String);
    const slots = spec.type === "bar" || spec.x.some((v) => typeof v !== "number");
    const n = spec.series.length;
    const series = [{
      label: spec.xLabel || "x",
      value: (_u, v) => (v == null ? "" : slots ? labels[v] ?? "" : format(v)),
    }];
    spec.series.forEach((s, k) => {
      const color = s.dash ? CHANCE : PALETTE[k % PALETTE.length];
      const entry = { label: s.label, stroke: color, width: s.dash ? 1.5 : 2, value: (_u, v) => format(v) };
      if (spec.type === "bar") {
        Object.assign(entry, { fill: `${color}cc`, width: 0, paths: bars(k, n), points: { show: false } });
      } else {
        if (s.dash) Object.assign(entry, { dash: [6, 6], points: { show: false } });
        else entry.points = { show: spec.x.length <= 60, size: 6, fill: color };
      }
      series.push(entry);
    });
    const xAxis = { ...AXIS, label: spec.xLabel || "" };
    if (slots) {
      Object.assign(xAxis, {
        grid: { show: false },
        // One label per slot, thinned so that labels do not overlap.
        splits: (u) => {
          const room = u.bbox.width / (window.devicePixelRatio || 1);
          const step = Math.max(1, Math.ceil((labels.length * 64) / Math.max(room, 1)));
          return labels.map((_, i) => i).filter((i) => i % step === 0);
        },
        values: (_u, splits) => splits.map((i) => short(labels[i] ?? "")),
      });
    }
    const height = spec.square ? Math.min(width, 420) : HEIGHT;
    return {
      title: spec.title || "",
      width,
      height,
      series,
      scales: {
        x: {
          time: false,
          ...(spec.xRange ? { range: () => spec.xRange } : slots ? { range: () => [-0.5, labels.length - 0.5] } : {}),
        },
        y: spec.yRange ? { range: () => spec.yRange } : spec.type === "bar" ? { range: fromZero } : {},
      },
      axes: [xAxis, { ...AXIS, label: spec.yLabel || "" }],
      cursor: { points: { show: spec.type !== "bar" } },
      legend: { live: true },
    };
  }

  function draw(element) {
    if (element.chart) return element.chart;
    let spec;
    try {
      spec = flowdeck.data(element.dataset.chart);
    } catch (error) {
      spec = null;
    }
    if (!spec || !Array.isArray(spec.x) || !Array.isArray(spec.series) || typeof uPlot === "undefined") {
      element.textContent = "This chart cannot be drawn.";
      element.classList.add("chart-error");
      return null;
    }
    if (element.classList.contains("square")) spec.square = true;
    const slots = spec.type === "bar" || spec.x.some((v) => typeof v !== "number");
    const data = [slots ? spec.x.map((_, i) => i) : spec.x, ...spec.series.map((s) => s.values)];
    const width = () => Math.max(element.clientWidth, 240);
    element.chart = new uPlot(options(spec, width()), data, element);
    // Follow the container's width (the window, a panel opening).
    if (typeof ResizeObserver !== "undefined") {
      let last = width();
      new ResizeObserver(() => {
        const now = width();
        if (Math.abs(now - last) < 2) return;
        last = now;
        element.chart.setSize({ width: now, height: spec.square ? Math.min(now, 420) : HEIGHT });
      }).observe(element);
    }
    return element.chart;
  }

  document.querySelectorAll("div.chart[data-chart]").forEach(draw);
  return { draw };
})();
