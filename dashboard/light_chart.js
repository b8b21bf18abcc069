// Draws a Plotly figure with one of plotly.js' partial bundles (1.5 MB each: "cartesian" for 2-D
// charts, "gl2d" for parallel coordinates) instead of the full one Streamlit's st.plotly_chart loads
// (4.7 MB, about 0.8 s of a page's cold load). See light_chart.py, which names the bundle.
// The figure is styled as st.plotly_chart's "streamlit" theme styles it, from the page's theme.

// One load per bundle and page; each bundle's own Plotly is kept (each sets window.Plotly on load).
function loadPlotly(bundle) {
  const loads = window.__digitlabPlotly || (window.__digitlabPlotly = {});
  if (!loads[bundle]) {
    loads[bundle] = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      // The app's root: where Streamlit's own scripts (<root>/static/js/...) come from, so that a
      // server.baseUrlPath or a proxy's prefix is kept; else the page's folder.
      const own = document.querySelector('script[src*="/static/js/"]');
      const root = own ? new URL("../../", own.src) : new URL("./", window.location.href);
      script.src = new URL(bundle, root).href;
      script.async = true;
      // The load event follows the script's run at once: window.Plotly is this bundle's then.
      script.onload = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error("no Plotly in " + script.src)));
      script.onerror = () => {
        delete loads[bundle];  // a later render tries again
        reject(new Error("could not load " + script.src));
      };
      document.head.appendChild(script);
    });
  }
  return loads[bundle];
}

// Streamlit's grays (its plotly theme picks them by whether the background is light).
const GRAY = { g10: "#fafafa", g30: "#e6eaf1", g70: "#808495", g85: "#31333F", g90: "#262730" };

// A colour as the browser reads it (any CSS colour): its red, green and blue, and whether it was
// opaque (the canvas gives #rrggbb then, rgba(...) otherwise). One probe serves every render.
const PROBE = document.createElement("canvas").getContext("2d");

function channels(colour) {
  PROBE.fillStyle = "#000000";  // a fresh canvas's: what a colour the browser cannot read gives
  PROBE.fillStyle = colour;
  const read = PROBE.fillStyle;
  const opaque = read.startsWith("#");
  const rgb = opaque ? [1, 3, 5].map(i => parseInt(read.slice(i, i + 2), 16))
    : (read.match(/[\d.]+/g) || [255, 255, 255]).slice(0, 3).map(Number);
  return { rgb, opaque };
}

function luminance(colour) {
  const lin = channels(colour || "#ffffff").rgb.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
}

function withAlpha(colour, alpha) {
  const { rgb: [r, g, b], opaque } = channels(colour);
  return opaque ? `rgba(${r}, ${g}, ${b}, ${alpha})` : colour;
}

function readTheme(element) {
  const css = getComputedStyle(element);
  const v = (name, fallback) => (css.getPropertyValue(name) || "").trim() || fallback;
  const list = (name, fallback) => v(name, fallback).split(",").map(s => s.trim());
  const bg = v("--st-background-color", "#ffffff");
  const light = luminance(bg) > 0.5;
  return {
    bg,
    secondaryBg: v("--st-secondary-background-color", bg),
    text: v("--st-text-color", light ? "#31333F" : "#fafafa"),
    heading: v("--st-heading-color", v("--st-text-color", light ? "#31333F" : "#fafafa")),
    border: v("--st-border-color", light ? GRAY.g30 : GRAY.g85),
    font: v("--st-font", '"Source Sans", sans-serif'),
    headingFont: v("--st-heading-font", v("--st-font", '"Source Sans", sans-serif')),
    fg: light ? GRAY.g70 : GRAY.g30,          // axis labels, ticks, hover text
    grid: light ? GRAY.g30 : GRAY.g85,        // grid, zero line, ticks
    legend: light ? GRAY.g90 : GRAY.g10,
    green: v("--st-green-color", "#21c354"), red: v("--st-red-color", "#ff2b2b"), blue: v("--st-blue-color", "#1c83e1"),
    categorical: list("--st-chart-categorical-colors",
      "#0068c9,#83c9ff,#ff2b2b,#ffabab,#29b09d,#7defa1,#ff8700,#ffd16a,#6d3fc0,#d5dae5"),
    sequential: list("--st-chart-sequential-colors",
      "#e4f5ff,#c7ebff,#a6dcff,#83c9ff,#60b4ff,#3d9df3,#1c83e1,#0068c9,#0054a3,#004280"),
    diverging: list("--st-chart-diverging-colors",
      "#7d353b,#bd4043,#ff4b4b,#ff8c8c,#ffc7c7,#a6dcff,#60b4ff,#1c83e1,#0054a3,#004280"),
  };
}

// Streamlit's Python side gives every figure its "streamlit" template, whose colours are
// placeholders (#000001 ...) that its front end replaces with the theme's: so do we.
function placeholders(t) {
  const map = {};
  const pad = n => "#" + String(n).padStart(6, "0");
  for (let i = 0; i < 10; i++) {
    map[pad(i + 1)] = t.categorical[i % t.categorical.length];
    map[pad(i + 11)] = t.sequential[i % t.sequential.length];
    map[pad(i + 21)] = t.diverging[i % t.diverging.length];
  }
  Object.assign(map, {
    "#000032": t.green, "#000033": t.red, "#000034": t.blue, "#000035": t.grid, "#000036": t.fg,
    "#000037": t.legend, "#000038": t.bg, "#000039": withAlpha(t.text, 0.05), "#000040": t.secondaryBg,
  });
  return map;
}

function themed(json, t) {
  const map = placeholders(t);
  const fig = JSON.parse(json.replace(/#0000[0-4]\d/g, m => map[m] || m));
  const layout = fig.layout = fig.layout || {};
  const template = layout.template = layout.template || {};
  const base = template.layout = template.layout || {};
  const font = (size, color) => ({ color, size });
  Object.assign(base, {
    font: { color: t.fg, family: t.font, size: 12, weight: 400 },
    title: { font: { family: t.headingFont, size: 16, color: t.heading }, pad: { l: 4 }, xanchor: "left", x: 0 },
    legend: { title: { font: font(12, t.fg), side: "top" }, valign: "top", bordercolor: "rgba(0,0,0,0)", borderwidth: 0,
              font: font(12, t.legend) },
    paper_bgcolor: t.bg, plot_bgcolor: t.bg,
    yaxis: { ticklabelposition: "outside", zerolinecolor: t.grid, title: { font: font(14, t.fg), standoff: 24 },
             tickcolor: t.grid, tickfont: font(12, t.fg), gridcolor: t.grid, minor: { gridcolor: t.grid }, automargin: true },
    xaxis: { zerolinecolor: t.grid, gridcolor: t.grid, showgrid: false, tickfont: font(12, t.fg), tickcolor: t.grid,
             title: { font: font(14, t.fg), standoff: 20 }, minor: { gridcolor: t.grid }, zeroline: false, automargin: true },
    margin: { pad: 8, r: 0, l: 0 },
    hoverlabel: { bgcolor: t.bg, bordercolor: t.border, font: { color: t.fg, family: t.font, size: 12 } },
    coloraxis: { colorbar: { thickness: 16, xpad: 24, ticklabelposition: "outside", outlinecolor: "rgba(0,0,0,0)",
                             outlinewidth: 8, len: 0.75, y: 0.5745, title: { font: font(14, t.fg) },
                             tickfont: font(12, t.fg) } },
  });
  const title = layout.title;
  if (title && (typeof title === "string" || title.text)) {
    const text = typeof title === "string" ? title : title.text;
    layout.title = Object.assign({}, typeof title === "string" ? {} : title, { text: `<b>${text}</b>` });
  }
  return fig;
}

const FULLSCREEN = {
  width: 600, height: 470, name: "fullscreen",
  path: "M32 32C14.3 32 0 46.3 0 64v96c0 17.7 14.3 32 32 32s32-14.3 32-32V96h64c17.7 0 32-14.3 32-32s-14.3-32-32-32H32zM64 352c0-17.7-14.3-32-32-32s-32 14.3-32 32v96c0 17.7 14.3 32 32 32h96c17.7 0 32-14.3 32-32s-14.3-32-32-32H64V352zM320 32c-17.7 0-32 14.3-32 32s14.3 32 32 32h64v64c0 17.7 14.3 32 32 32s32-14.3 32-32V64c0-17.7-14.3-32-32-32H320zM448 352c0-17.7-14.3-32-32-32s-32 14.3-32 32v64H320c-17.7 0-32 14.3-32 32s14.3 32 32 32h96c17.7 0 32-14.3 32-32V352z",
};

export default function (component) {
  const { data, parentElement } = component;
  const box = parentElement.querySelector(".dl-chart");
  if (!box || !data || typeof data.figure !== "string" || typeof data.bundle !== "string") return;
  const state = box.__dl || (box.__dl = { version: 0 });
  state.component = component;  // the latest render's (its setStateValue knows the current fragment)
  const version = ++state.version;  // a newer render supersedes one still waiting for the bundle
  const theme = readTheme(box);
  const fig = themed(data.figure, theme);
  const height = fig.layout.height || 450;
  if (document.fullscreenElement !== box) box.style.height = height + "px";
  box.style.background = theme.bg;
  const config = Object.assign({
    displaylogo: false, showSendToCloud: false, modeBarButtonsToRemove: ["lasso2d", "select2d"],
    modeBarButtonsToAdd: [{ name: "Fullscreen", title: "Fullscreen", icon: FULLSCREEN,
      click: () => (document.fullscreenElement ? document.exitFullscreen() : box.requestFullscreen()) }],
  }, data.config || {});
  loadPlotly(data.bundle).then(Plotly => {
    if (version !== state.version || !box.isConnected) return;
    if (state.Plotly && state.Plotly !== Plotly) {  // the figure now needs the other bundle
      state.Plotly.purge(box);
      if (state.observer) state.observer.disconnect();
      state.observer = null;
      state.selecting = false;
    }
    if (box.classList.contains("dl-chart-error")) {  // an earlier render could not load the bundle
      box.classList.remove("dl-chart-error");
      box.textContent = "";
    }
    const full = document.fullscreenElement === box;
    const layout = Object.assign({}, fig.layout, { autosize: true, width: undefined, height: full ? undefined : height });
    state.Plotly = Plotly;
    return Plotly.react(box, fig.data || [], layout, config).then(() => {
      if (!state.observer) {  // follow the column's width (and fullscreen)
        state.observer = new ResizeObserver(() => {
          if (box.isConnected && box.clientWidth > 0) state.Plotly.Plots.resize(box);
        });
        state.observer.observe(box);
      }
      if (!state.fullscreen) {
        state.fullscreen = true;
        box.addEventListener("fullscreenchange", () => {  // full screen: the plot takes the screen's size
          const full = document.fullscreenElement === box;
          box.style.height = full ? "100vh" : state.height + "px";
          state.Plotly.relayout(box, { width: null, height: full ? null : state.height });
        });
      }
      if (data.select && !state.selecting) {  // a click selects that point, a double click clears it
        state.selecting = true;
        const send = points => state.component.setStateValue("selection", {
          points, point_indices: points.map(p => p.point_index), box: [], lasso: [] });
        box.on("plotly_click", event => {
          const p = event && event.points && event.points[0];
          if (p) send([{ x: p.x, y: p.y, curve_number: p.curveNumber, point_index: p.pointIndex }]);
        });
        box.on("plotly_doubleclick", () => send([]));
      }
      state.height = height;
      box.dataset.drawn = String(version);
    });
  }).catch(error => {
    box.textContent = "The chart could not be drawn: " + error.message + ". Reload the page to try again.";
    box.style.height = "auto";
    box.classList.add("dl-chart-error");
  });
  return () => {
    if (state.observer) state.observer.disconnect();
    state.observer = null;
    if (state.Plotly) state.Plotly.purge(box);
  };
}
