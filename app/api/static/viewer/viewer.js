/* Frontline Atlas map viewer. Plain JavaScript, no build step; MapLibre GL JS is served by the
   service itself (/static/vendor/...). Everything it shows comes from the public API:
   /regions, /sources, /parties, /exports/observations (the dates on which sources changed),
   /regions/{slug}/control or /collections/control/items (what is drawn at a moment),
   /regions/{slug}/claims, /area and /change/geometry (the region panel), for a first-level
   region or a country (/regions?level=country: the sums over its member regions).
   The view lives in the URL hash: #at=2025-04-26&region=kursk&sources=a,b&illustrative=1&max_age=30
   (region=ukraine for a country). */
(() => {
  "use strict";

  const CONFIG = JSON.parse(document.getElementById("atlas-config").textContent);
  // Okabe-Ito: readable for colour-blind readers. UA blue, RU vermillion, contested grey.
  const COLORS = { UA: "#0072B2", RU: "#D55E00", grey: "#999999", gained: "#009E73", lost: "#CC79A7" };
  const SERIES_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
  const $ = (id) => document.getElementById(id);
  const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const day = (iso) => (iso ? iso.slice(0, 10) : "");
  const km2 = (value) => (value === null || value === undefined ? "–" : `${Number(value).toLocaleString("en", { maximumFractionDigits: 1 })} km²`);

  const state = { at: "", region: "", sources: null, illustrative: false, maxAge: null, change: null };
  const data = { pieces: [], sources: [], parties: [], regions: null, countries: [], dates: [], current: null };
  const cache = new Map();
  let renderToken = 0;
  let playing = null;

  // --- fetching --------------------------------------------------------------------------------

  async function getJSON(url) {
    if (cache.has(url)) return cache.get(url);
    const response = await fetch(url, { headers: { Accept: "application/json, application/geo+json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || body.title || `${response.status} from ${url}`);
      error.status = response.status;
      throw error;
    }
    cache.set(url, body);
    return body;
  }

  async function getAllFeatures(url) {
    // OGC API items: follow the `next` links.
    const features = [];
    let next = url;
    while (next) {
      const page = await getJSON(next);
      features.push(...page.features);
      const link = (page.links || []).find((l) => l.rel === "next");
      next = link ? new URL(link.href).pathname + new URL(link.href).search : null;
    }
    return { type: "FeatureCollection", features };
  }

  const maxAgeParam = () => (state.maxAge ? `P${state.maxAge}D` : null);

  function controlURL(at = state.at) {
    const params = new URLSearchParams();
    if (state.region) {
      params.set("at", at);
      if (maxAgeParam()) params.set("max_age", maxAgeParam());
      return `/regions/${encodeURIComponent(state.region)}/control?${params}`;
    }
    params.set("datetime", at);
    params.set("limit", "1000");
    if (maxAgeParam()) params.set("max_age", maxAgeParam());
    return `/collections/control/items?${params}`;
  }

  // --- the URL hash ----------------------------------------------------------------------------

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.get("at")) state.at = params.get("at");
    state.region = params.get("region") || "";
    state.sources = params.has("sources") ? new Set(params.get("sources").split(",").filter(Boolean)) : null;
    state.illustrative = params.get("illustrative") === "1";
    state.maxAge = params.get("max_age") ? Number(params.get("max_age")) : null;
    state.change = params.get("change") ? params.get("change").split(",") : null;
  }

  function writeHash() {
    const params = new URLSearchParams();
    params.set("at", state.at);
    if (state.region) params.set("region", state.region);
    if (state.sources) params.set("sources", [...state.sources].join(","));
    if (state.illustrative) params.set("illustrative", "1");
    if (state.maxAge) params.set("max_age", String(state.maxAge));
    if (state.change) params.set("change", state.change.join(","));
    history.replaceState(null, "", `#${params.toString().replace(/%2C/g, ",")}`);
  }

  // --- the map ---------------------------------------------------------------------------------

  const partyColor = ["case",
    ["==", ["get", "status"], "contested"], COLORS.grey,
    ["match", ["coalesce", ["get", "party"], ""], "UA", COLORS.UA, "RU", COLORS.RU, COLORS.grey]];
  const hatchName = ["case",
    ["==", ["get", "status"], "contested"], "hatch-grey",
    ["match", ["coalesce", ["get", "party"], ""], "UA", "hatch-UA", "RU", "hatch-RU", "hatch-grey"]];

  function style() {
    const sources = {};
    const layers = [{ id: "background", type: "background", paint: { "background-color": "#dfe6ec" } }];
    if (CONFIG.basemap_url) {
      sources.basemap = { type: "raster", tiles: [CONFIG.basemap_url], tileSize: 256, attribution: CONFIG.basemap_attribution || "" };
      layers.push({ id: "basemap", type: "raster", source: "basemap" });
    }
    return { version: 8, sources, layers };
  }

  const map = new maplibregl.Map({
    container: "map",
    style: style(),
    center: [33.5, 49.5],
    zoom: 4.6,
    fadeDuration: 0, // no symbol layers to fade: repaint at once
    attributionControl: { compact: false },
    canvasContextAttributes: { preserveDrawingBuffer: true }, // lets tests and users save pixels
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new maplibregl.ScaleControl(), "bottom-left");

  function hatch(color) {
    const size = 8;
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = size;
    const ctx = canvas.getContext("2d");
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(0, size);
    ctx.lineTo(size, 0);
    ctx.moveTo(-2, 2);
    ctx.lineTo(2, -2);
    ctx.moveTo(size - 2, size + 2);
    ctx.lineTo(size + 2, size - 2);
    ctx.stroke();
    return ctx.getImageData(0, 0, size, size);
  }

  const EMPTY = { type: "FeatureCollection", features: [] };

  function addLayers() {
    for (const [name, color] of [["UA", COLORS.UA], ["RU", COLORS.RU], ["grey", COLORS.grey]]) {
      map.addImage(`hatch-${name}`, hatch(color));
    }
    map.addSource("regions", { type: "geojson", data: data.regions });
    map.addSource("control", { type: "geojson", data: EMPTY });
    map.addSource("change", { type: "geojson", data: EMPTY });
    const base = !!CONFIG.basemap_url;
    map.addLayer({ id: "regions-fill", type: "fill", source: "regions", paint: { "fill-color": "#fbfaf6", "fill-opacity": base ? 0.1 : 1 } });
    map.addLayer({ id: "regions-line", type: "line", source: "regions", paint: { "line-color": "#7a7a7a", "line-width": 0.8 } });
    map.addLayer({ id: "control-fill", type: "fill", source: "control", filter: ["==", ["get", "illustrative"], false], paint: { "fill-color": partyColor, "fill-opacity": 0.5 } });
    map.addLayer({ id: "control-line", type: "line", source: "control", filter: ["==", ["get", "illustrative"], false], paint: { "line-color": partyColor, "line-width": 1.5 } });
    map.addLayer({ id: "illustrative-fill", type: "fill", source: "control", filter: ["==", ["get", "illustrative"], true], paint: { "fill-color": partyColor, "fill-opacity": 0.25 } });
    map.addLayer({ id: "illustrative-hatch", type: "fill", source: "control", filter: ["==", ["get", "illustrative"], true], paint: { "fill-pattern": hatchName } });
    map.addLayer({ id: "illustrative-line", type: "line", source: "control", filter: ["==", ["get", "illustrative"], true], paint: { "line-color": partyColor, "line-width": 2, "line-dasharray": [2, 2] } });
    map.addLayer({ id: "change-fill", type: "fill", source: "change", paint: { "fill-color": ["match", ["get", "change"], "gained", COLORS.gained, COLORS.lost], "fill-opacity": 0.6 } });
    map.addLayer({ id: "change-line", type: "line", source: "change", paint: { "line-color": ["match", ["get", "change"], "gained", COLORS.gained, COLORS.lost], "line-width": 2 } });
    map.addLayer({ id: "region-selected", type: "line", source: "regions", filter: ["==", ["get", "slug"], ""], paint: { "line-color": "#000", "line-width": 2.5 } });
    addLabels();
  }

  function labelPoint(geometry) {
    // Centroid of the largest polygon's outer ring: good enough to place a name.
    const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    let best = null;
    for (const polygon of polygons) {
      const ring = polygon[0];
      let area = 0, x = 0, y = 0;
      for (let i = 0; i < ring.length - 1; i++) {
        const [x0, y0] = ring[i];
        const [x1, y1] = ring[i + 1];
        const cross = x0 * y1 - x1 * y0;
        area += cross;
        x += (x0 + x1) * cross;
        y += (y0 + y1) * cross;
      }
      if (!best || Math.abs(area) > Math.abs(best.area)) best = { area, point: [x / (3 * area), y / (3 * area)] };
    }
    return best.point;
  }

  function addLabels() {
    // HTML labels: the map has no glyph server offline, so no symbol layers.
    for (const feature of data.regions.features) {
      if (!feature.geometry) continue;
      const element = document.createElement("div");
      element.className = "region-label";
      element.textContent = feature.properties.name;
      new maplibregl.Marker({ element }).setLngLat(labelPoint(feature.geometry)).addTo(map);
    }
  }

  function applyFilters() {
    const shown = enabledSources();
    const bySource = ["in", ["get", "source"], ["literal", shown]];
    for (const [id, illustrative] of [["control-fill", false], ["control-line", false], ["illustrative-fill", true], ["illustrative-hatch", true], ["illustrative-line", true]]) {
      map.setFilter(id, ["all", ["==", ["get", "illustrative"], illustrative], bySource]);
      if (illustrative) map.setLayoutProperty(id, "visibility", state.illustrative ? "visible" : "none");
    }
    map.setFilter("region-selected", ["in", ["get", "slug"], ["literal", members(state.region)]]);
  }

  const enabledSources = () => data.sources.map((s) => s.slug).filter((slug) => !state.sources || state.sources.has(slug));

  function shownFeatures() {
    // What the map draws now: features with a polygon, of enabled sources, illustrations if on.
    const shown = new Set(enabledSources());
    return (data.current ? data.current.features : []).filter(
      (f) => f.geometry && shown.has(f.properties.source) && (state.illustrative || !f.properties.illustrative));
  }

  // --- the time slider -------------------------------------------------------------------------

  function changeDates() {
    // The dates on which the shown sources changed: when a claim starts or stops being in force.
    const shown = new Set(enabledSources());
    const within = new Set(members(state.region));
    const dates = new Set();
    for (const p of data.pieces) {
      if (state.region && !within.has(p.region)) continue;
      if (!shown.has(p.source) || (p.illustrative && !state.illustrative)) continue;
      dates.add(day(p.valid_from));
      if (p.valid_until) dates.add(day(p.valid_until));
    }
    return [...dates].sort();
  }

  function syncSlider() {
    data.dates = changeDates();
    const slider = $("slider");
    slider.max = String(Math.max(0, data.dates.length - 1));
    let index = -1;
    data.dates.forEach((d, i) => { if (d <= state.at) index = i; });
    slider.value = String(Math.max(0, index));
    $("date").value = state.at;
    $("slider-first").textContent = data.dates[0] || "";
    $("slider-last").textContent = data.dates[data.dates.length - 1] || "";
    $("slider-info").textContent = index >= 0 ? `change ${index + 1} of ${data.dates.length}` : "before the first change";
  }

  function step(delta) {
    const dates = data.dates;
    if (!dates.length) return false;
    let index = delta > 0 ? dates.findIndex((d) => d > state.at) : dates.findLastIndex((d) => d < state.at);
    if (index < 0) return false;
    setAt(dates[index]);
    return true;
  }

  function togglePlay() {
    if (playing) {
      clearInterval(playing);
      playing = null;
    } else {
      if (!data.dates.length) return;
      if (state.at >= data.dates[data.dates.length - 1]) setAt(data.dates[0]);
      playing = setInterval(() => { if (!step(1)) togglePlay(); }, 1200);
    }
    $("play").innerHTML = playing ? "&#10074;&#10074;" : "&#9654;";
    $("play").setAttribute("aria-label", playing ? "Pause" : "Play");
  }

  // --- drawing a moment ------------------------------------------------------------------------

  function setAt(date) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) return Promise.resolve();
    state.at = date;
    data.pending = render(); // what a test waits for before it waits for the map's `idle`
    return data.pending;
  }

  async function render() {
    const token = ++renderToken;
    syncSlider();
    writeHash();
    let collection;
    try {
      collection = await fetchMoment(state.at);
    } catch (error) {
      $("status").innerHTML = `<span class="warn">${esc(error.message)}</span>`;
      return;
    }
    if (token !== renderToken) return;
    data.current = collection;
    map.getSource("control").setData({ type: "FeatureCollection", features: collection.features.filter((f) => f.geometry) });
    applyFilters();
    describe(collection.features);
    // The panel and the prefetches wait until the map has drawn the moment: the map first.
    map.once("idle", () => {
      if (token !== renderToken) return;
      if (state.region) renderRegionPanel(token);
      prefetchNeighbours();
    });
  }

  const fetchMoment = (at) => (state.region ? getJSON(controlURL(at)) : getAllFeatures(controlURL(at)));

  function prefetchNeighbours() {
    // The slider's next and previous stops, so that a step finds its data in the cache.
    const next = data.dates.find((d) => d > state.at);
    const previous = data.dates.findLast((d) => d < state.at);
    for (const at of [next, previous]) if (at) fetchMoment(at).catch(() => {});
  }

  function describe(features) {
    const shown = new Set(enabledSources());
    const mine = features.filter((f) => shown.has(f.properties.source));
    const drawn = shownFeatures().length;
    const hidden = mine.filter((f) => f.geometry && f.properties.illustrative && !state.illustrative).length;
    const figures = mine.filter((f) => !f.geometry).length;
    const parts = [`${state.at}: ${drawn} shape${drawn === 1 ? "" : "s"} drawn`];
    if (hidden) parts.push(`${hidden} schematic illustration${hidden === 1 ? "" : "s"} hidden (tick “show schematic illustrations”)`);
    if (figures) parts.push(`${figures} claim${figures === 1 ? "" : "s"} with a figure but no polygon (see the region panel)`);
    if (state.maxAge) parts.push(`claims older than ${state.maxAge} days left out`);
    $("status").textContent = `${parts.join("; ")}.`;
  }

  // --- popups ----------------------------------------------------------------------------------

  const sourceName = (slug) => (data.sources.find((s) => s.slug === slug) || {}).name || slug;

  function citation(p, short) {
    // The publisher, linked when there is a URL; the title too unless `short` (it is the tooltip).
    const title = esc(p.citation_title || "");
    const by = esc(p.citation_publisher || p.citation_title || "citation");
    const text = short || !p.citation_title ? by : `${title} (${by})`;
    return p.citation_url
      ? `<a href="${esc(p.citation_url)}" title="${title}" target="_blank" rel="noopener">${text}</a>`
      : `<span title="${title}">${text}</span>`;
  }

  function popupHTML(features) {
    return features.map(({ properties: p }) => {
      if (p.change) return `<p><strong>${esc(p.change)}</strong> ${km2(p.area_km2)} according to ${esc(sourceName(p.source))}</p>`;
      const party = p.party || "no party";
      if (p.regions !== undefined) {
        // A country's total: the union of its member regions' pieces of one source. (The map
        // hands back a feature's list properties as JSON text.)
        const regions = typeof p.regions === "string" ? JSON.parse(p.regions) : p.regions;
        return `<div class="claim"><strong>${esc(sourceName(p.source))}</strong>${p.illustrative ? " <em>(schematic illustration, not surveyed)</em>" : ""}<br>
          ${esc(party)} · ${esc(p.status)} · ${esc(p.basis)}<br>
          sum over ${esc(regions.map(shortName).join(", "))}: ${km2(p.area_km2)}<br>
          in force since ${esc(day(p.oldest_valid_from))}${day(p.oldest_valid_from) === day(p.valid_from) ? "" : ` – ${esc(day(p.valid_from))}`}, age ${p.age_days ?? "?"} days at ${esc(state.at)}<br>
          <small>citations: in each region's own panel</small></div>`;
      }
      return `<div class="claim"><strong>${esc(sourceName(p.source))}</strong>${p.illustrative ? " <em>(schematic illustration, not surveyed)</em>" : ""}<br>
        ${esc(party)} · ${esc(p.status)} · ${esc(p.basis)}<br>
        valid ${esc(day(p.valid_from))} – ${p.valid_until ? esc(day(p.valid_until)) : "still the latest word"}<br>
        area ${km2(p.area_km2)}${p.reported_area_km2 !== null && p.reported_area_km2 !== undefined ? `, reported ${km2(p.reported_area_km2)}` : ""}<br>
        age ${p.age_days ?? "?"} days at ${esc(state.at)}<br>${citation(p)}</div>`;
    }).join("<hr>");
  }

  map.on("click", (event) => {
    const layers = ["change-fill", "control-fill", "illustrative-fill"].filter((id) => map.getLayoutProperty(id, "visibility") !== "none");
    const hits = map.queryRenderedFeatures(event.point, { layers });
    if (hits.length) {
      new maplibregl.Popup({ maxWidth: "22rem" }).setLngLat(event.lngLat).setHTML(popupHTML(hits)).addTo(map);
      return;
    }
    const region = map.queryRenderedFeatures(event.point, { layers: ["regions-fill"] })[0];
    if (region) selectRegion(region.properties.slug, true);
  });
  for (const id of ["control-fill", "illustrative-fill", "change-fill", "regions-fill"]) {
    map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
  }

  // --- the region panel ------------------------------------------------------------------------

  // A region is a first-level region (drawn on the map) or a country (/regions?level=country),
  // whose figures are the sums over its member regions (its `members`; their features name it
  // as their `parent`).
  const country = (slug) => data.countries.find((f) => f.id === slug);
  const regionFeature = (slug) => data.regions.features.find((f) => f.id === slug) || country(slug);
  const regionName = (slug) => regionFeature(slug)?.properties.name || slug;
  const shortName = (slug) => regionName(slug).replace(/ Oblast$/, ""); // in lists of members

  function members(slug) {
    // The first-level regions a region's figures come from: itself, or a country's members.
    if (!slug) return [];
    const found = country(slug);
    return found ? found.properties.members : [slug];
  }

  function memberNames(feature) {
    // "Belgorod, Bryansk, Kursk"; "27 regions" when a list would be long.
    const names = feature.properties.members.map(shortName);
    return names.length <= 3 ? names.join(", ") : `${names.length} regions`;
  }

  const countryLabel = (feature) => `${feature.properties.name} (${memberNames(feature)})`;

  function fillRegionChoice() {
    const group = (label, features, text) => {
      const element = document.createElement("optgroup");
      element.label = label;
      for (const f of features) {
        const option = document.createElement("option");
        option.value = f.id;
        option.textContent = text(f);
        element.append(option);
      }
      $("region").append(element);
    };
    if (data.countries.length) group("Countries: sums over their regions", data.countries, countryLabel);
    group("Regions", data.regions.features, (f) => f.properties.name);
  }

  function selectRegion(slug, fit) {
    state.region = slug;
    $("region").value = slug;
    if (!slug) {
      state.change = null;
      map.getSource("change").setData(EMPTY);
      $("region-body").innerHTML = '<p class="small">Choose a region or a country, or click a region on the map.</p>';
    }
    const feature = regionFeature(slug);
    if (fit && feature && feature.bbox) map.fitBounds(feature.bbox, { padding: 30, duration: 0 });
    return render();
  }

  const claimsURL = (party) => {
    const params = new URLSearchParams({ at: state.at, party });
    params.append("status", "controlled");
    params.append("status", "contested");
    if (maxAgeParam()) params.set("max_age", maxAgeParam());
    return `/regions/${encodeURIComponent(state.region)}/claims?${params}`;
  };

  async function renderRegionPanel(token) {
    const slug = state.region;
    const parties = data.parties.map((p) => p.code);
    const [claims, areas] = await Promise.all([
      Promise.all(parties.map((party) => getJSON(claimsURL(party)))),
      Promise.all(parties.map((party) => getJSON(`/regions/${encodeURIComponent(slug)}/area?party=${party}&status=controlled&status=contested`))),
    ]);
    if (token !== renderToken) return;
    const total = country(slug);
    let html = `<h3>${esc(regionName(slug))} at ${esc(state.at)}</h3>`;
    if (total) html += `<p class="small country-note">The whole country: each figure is one source's sum over its regions (${esc(memberNames(total))}); the regions' own panels give the citations.</p>`;
    claims.forEach((body, i) => {
      if (!body.claims.length) return;
      html += `<h4>Ground credited to ${esc(parties[i])}: claims side by side</h4>${total ? totalsTable(body) : claimsTable(body)}`;
    });
    if (!claims.some((b) => b.claims.length)) html += "<p>No claim is in force at this moment.</p>";
    data.mainParty = parties[areas.findIndex((body) => body.series.length)] || parties[0];
    areas.forEach((body, i) => {
      if (body.series.length) html += `<h4>Area of ${esc(parties[i])} ground over time</h4>${chart(body)}`;
    });
    html += changeForm();
    $("region-body").innerHTML = html;
    bindChangeForm();
  }

  function claimsTable(body) {
    const rows = body.claims.map((c) => `<tr class="${c.illustrative ? "illustrative" : ""}">
      <td>${esc(c.source_name || c.source)}${c.illustrative ? " (schematic)" : ""}<br><small>${esc(c.status)}, ${esc(c.basis)}</small></td>
      <td class="num">${c.area_km2 === null ? "no figure" : `${esc(c.qualifier || "")} ${km2(c.area_km2)}`}<br><small>${esc(c.kind || "")}</small></td>
      <td class="num">${esc(day(c.at))}<br><small>${esc(c.age_days)} days old</small></td>
      <td>${citation(c, true)}</td></tr>`).join("");
    const spread = body.spread
      ? `<p class="small">Spread: <strong>${km2(body.spread.spread_km2)}</strong> between ${esc(sourceName(body.spread.high.source))} (${km2(body.spread.high.area_km2)}) and ${esc(sourceName(body.spread.low.source))} (${km2(body.spread.low.area_km2)}). Illustrations left out.</p>`
      : "";
    return `<table class="claims"><tr><th>source</th><th>figure</th><th>date, age</th><th>citation</th></tr>${rows}</table>${spread}`;
  }

  function totalsTable(body) {
    // A country's claims: per source, the sum of its member regions' figures in force, with the
    // dates of the oldest and newest of them and the regions they come from.
    const rows = body.claims.map((c) => {
      const dates = day(c.oldest) === day(c.newest) ? day(c.newest) : `${day(c.oldest)} – ${day(c.newest)}`;
      const drawn = c.drawn_area_km2 !== null && c.drawn_area_km2 !== undefined && Math.abs(c.drawn_area_km2 - c.area_km2) >= 0.5
        ? `<br><small>as drawn ${km2(c.drawn_area_km2)}</small>` : "";
      return `<tr class="${c.illustrative ? "illustrative" : ""}">
      <td>${esc(c.source_name || c.source || c.account)}${c.illustrative ? " (schematic)" : ""}<br><small>${esc(c.status)}, ${esc(c.basis)}</small></td>
      <td class="num">${km2(c.area_km2)}<br><small>${esc(c.kind || "")}</small>${drawn}</td>
      <td class="num">${esc(dates)}<br><small>${esc(c.age_days)} days old</small></td>
      <td>${esc(Object.keys(c.regions || {}).map(shortName).join(", "))}</td></tr>`;
    }).join("");
    const spread = body.spread
      ? `<p class="small">Spread: <strong>${km2(body.spread.spread_km2)}</strong> between ${esc(sourceName(body.spread.high.source))} (${km2(body.spread.high.area_km2)}) and ${esc(sourceName(body.spread.low.source))} (${km2(body.spread.low.area_km2)}). Illustrations left out.</p>`
      : "";
    return `<table class="claims totals"><tr><th>source</th><th>sum</th><th>dates, age</th><th>from</th></tr>${rows}</table>${spread}`;
  }

  function sourceColor(slug) {
    const index = data.sources.findIndex((s) => s.slug === slug);
    return SERIES_COLORS[(index < 0 ? 0 : index) % SERIES_COLORS.length];
  }

  function chart(body) {
    // Step lines: a figure holds until the source's next one, so it is never drawn as a slope.
    const W = 380, H = 170, L = 42, R = 8, T = 8, B = 22;
    const points = body.series.flatMap((s) => s.points);
    const times = points.map((p) => Date.parse(p.at));
    const atTime = Date.parse(`${state.at}T23:59:59Z`);
    const t0 = Math.min(...times, atTime);
    const tmax = Math.max(...times, atTime);
    const t1 = tmax + Math.max(86400000 * 10, (tmax - t0) * 0.08);
    const ymax = Math.max(1, ...points.map((p) => p.area_km2 || 0)) * 1.1;
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / ymax) * (H - T - B);
    let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="Area over time, one step line per source">`;
    for (const v of [0, ymax / 2 / 1.1, ymax / 1.1]) {
      svg += `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${L - 3}" y="${y(v) + 3}" text-anchor="end">${Math.round(v).toLocaleString("en")}</text>`;
    }
    svg += `<text x="${L}" y="${H - 6}">${new Date(t0).toISOString().slice(0, 10)}</text><text x="${W - R}" y="${H - 6}" text-anchor="end">${new Date(t1).toISOString().slice(0, 10)}</text>`;
    let legend = "";
    for (const series of body.series) {
      const key = series.source || series.account;
      const color = sourceColor(key);
      const illustrative = series.points.some((p) => p.illustrative);
      const pts = series.points.filter((p) => p.area_km2 !== null);
      if (!pts.length) continue;
      let d = "";
      pts.forEach((p, i) => {
        const px = x(Date.parse(p.at)), py = y(p.area_km2);
        d += i === 0 ? `M${px.toFixed(1)},${py.toFixed(1)}` : `H${px.toFixed(1)}V${py.toFixed(1)}`;
      });
      // The last figure holds until the source's next word on this ground (which may carry no
      // figure), or to the right edge when it is still the latest.
      // For a country, the sum holds until one of the figures it adds up stops holding.
      const last = pts[pts.length - 1];
      const ids = last.observation_ids || [last.observation_id];
      const within = members(body.region);
      const ends = data.pieces
        .filter((q) => ids.includes(q.observation_id) && within.includes(q.region) && q.valid_until)
        .map((q) => Date.parse(q.valid_until));
      const until = ends.length ? Math.min(...ends) : t1;
      d += `H${x(Math.min(until, t1)).toFixed(1)}`;
      svg += `<path class="series" data-source="${esc(key)}" d="${d}" stroke="${color}"${illustrative ? ' stroke-dasharray="4 3"' : ""}/>`;
      for (const p of pts) {
        svg += `<circle class="point" data-source="${esc(key)}" cx="${x(Date.parse(p.at)).toFixed(1)}" cy="${y(p.area_km2).toFixed(1)}" r="3" fill="${color}"><title>${esc(sourceName(key))}: ${km2(p.area_km2)} (${esc(p.kind)}) on ${esc(day(p.at))}</title></circle>`;
      }
      legend += `<li><span class="sw" style="background:${color}"></span> ${esc(sourceName(key))}${illustrative ? " (schematic)" : ""}</li>`;
    }
    svg += `<line class="now" x1="${x(atTime)}" x2="${x(atTime)}" y1="${T}" y2="${H - B}"/></svg>`;
    return `<div class="chart">${svg}<ul class="swatches small">${legend}</ul></div>`;
  }

  function changeForm() {
    const previous = data.dates.filter((d) => d < state.at).pop() || data.dates[0] || state.at;
    const [from, to] = state.change || [previous, state.at];
    const chosen = $("change-party") ? $("change-party").value : data.mainParty;
    const options = data.parties.map((p) => `<option${p.code === chosen ? " selected" : ""}>${esc(p.code)}</option>`).join("");
    return `<h4>Change between two dates</h4>
      <form id="change-form" class="row"><input id="change-from" type="date" value="${esc(from)}" aria-label="from">
      <input id="change-to" type="date" value="${esc(to)}" aria-label="to">
      <select id="change-party" aria-label="party">${options}</select><button type="submit">Draw</button></form>
      <p class="small"><span class="sw gained"></span> gained <span class="sw lost"></span> lost, per source that drew polygons at both dates.</p>
      <div id="change-result"></div>`;
  }

  function bindChangeForm() {
    $("change-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.change = [$("change-from").value, $("change-to").value];
      writeHash();
      drawChange();
    });
    if (state.change) drawChange();
  }

  async function drawChange() {
    const [from, to] = state.change;
    const party = $("change-party") ? $("change-party").value : "UA";
    const params = new URLSearchParams({ party, from, to });
    let body;
    try {
      body = await getJSON(`/regions/${encodeURIComponent(state.region)}/change/geometry?${params}`);
    } catch (error) {
      $("change-result").innerHTML = `<p class="warn">${esc(error.message)}</p>`;
      return;
    }
    data.changes = body.features.filter((f) => f.geometry);
    map.getSource("change").setData({ type: "FeatureCollection", features: data.changes });
    const rows = body.features.map((f) => `<tr><td>${esc(sourceName(f.properties.source))}${f.properties.illustrative ? " (schematic)" : ""}</td><td>${esc(f.properties.change)}</td><td class="num">${km2(f.properties.area_km2)}</td></tr>`).join("");
    const skipped = body.skipped.map((s) => esc(sourceName(s.source))).join(", ");
    $("change-result").innerHTML = `<table><tr><th>source</th><th>change</th><th>area</th></tr>${rows}</table>${skipped ? `<p class="small">No polygons to compare (figures only): ${skipped}.</p>` : ""}`;
  }

  // --- the legend ------------------------------------------------------------------------------

  function buildLegend() {
    const counts = {};
    for (const p of data.pieces) counts[p.source] = (counts[p.source] || 0) + 1;
    $("sources").innerHTML = `<h3>Sources <small>(colour: its line in the charts)</small></h3>${data.sources.map((s) => `<label title="${esc(s.description || "")}">
      <input type="checkbox" class="source-toggle" value="${esc(s.slug)}" ${!state.sources || state.sources.has(s.slug) ? "checked" : ""}>
      <span class="sw" style="background:${sourceColor(s.slug)}"></span> ${esc(s.name)} <small>(${counts[s.slug] || 0})</small></label>`).join("")}`;
    for (const box of document.querySelectorAll(".source-toggle")) {
      box.addEventListener("change", () => {
        const on = [...document.querySelectorAll(".source-toggle")].filter((b) => b.checked).map((b) => b.value);
        state.sources = on.length === data.sources.length ? null : new Set(on);
        render();
      });
    }
    $("illustrative").checked = state.illustrative;
    $("age-on").checked = !!state.maxAge;
    if (state.maxAge) $("age-days").value = String(state.maxAge);
  }

  function bindControls() {
    $("slider").addEventListener("input", () => setAt(data.dates[Number($("slider").value)]));
    $("date").addEventListener("change", () => setAt($("date").value));
    $("step-back").addEventListener("click", () => step(-1));
    $("step-forward").addEventListener("click", () => step(1));
    $("play").addEventListener("click", togglePlay);
    $("illustrative").addEventListener("change", () => { state.illustrative = $("illustrative").checked; render(); });
    const age = () => { state.maxAge = $("age-on").checked ? Math.max(1, Number($("age-days").value) || 30) : null; render(); };
    $("age-on").addEventListener("change", age);
    $("age-days").addEventListener("change", () => { if ($("age-on").checked) age(); });
    $("region").addEventListener("change", () => selectRegion($("region").value, true));
    document.addEventListener("keydown", (event) => {
      const tag = event.target.tagName;
      if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || tag === "BUTTON") return;
      const keys = { ArrowLeft: () => step(-1), ArrowRight: () => step(1), " ": togglePlay,
        Home: () => data.dates.length && setAt(data.dates[0]), End: () => data.dates.length && setAt(data.dates[data.dates.length - 1]) };
      if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
    });
    window.addEventListener("hashchange", () => { readHash(); buildLegend(); selectRegion(state.region, true); });
  }

  // --- start -----------------------------------------------------------------------------------

  const whenIdle = () => new Promise((resolve) => { map.once("idle", resolve); map.triggerRepaint(); });

  async function start() {
    readHash();
    const mapLoaded = new Promise((resolve) => map.once("load", resolve));
    let regions, countries, sources, parties, pieces;
    try {
      [regions, countries, sources, parties, pieces] = await Promise.all([
        getJSON("/regions"), getJSON("/regions?level=country&geometry=false"), getJSON("/sources"),
        getJSON("/parties"), getJSON("/exports/observations?format=geojson&geometry=none"),
      ]);
    } catch (error) {
      cannotRead(error);
      return false;
    }
    data.regions = regions;
    data.countries = countries.features;
    data.sources = sources.sources || sources;
    data.parties = parties.parties || parties;
    data.pieces = pieces.features.map((f) => f.properties);
    fillRegionChoice();
    if (!state.at) {
      const all = data.pieces.map((p) => day(p.valid_from)).sort();
      state.at = all[all.length - 1] || new Date().toISOString().slice(0, 10);
    }
    buildLegend();
    bindControls();
    await mapLoaded;
    addLayers();
    await selectRegion(state.region, true);
    await whenIdle();
    return true;
  }

  function cannotRead(error) {
    // Nothing to draw: say why where the legend's status goes; no region to choose.
    const message = error.status === 401
      ? "This service asks for a token for every read (REQUIRE_TOKEN_FOR_READS), and the map " +
        "viewer cannot send one. Programs can read with 'Authorization: Bearer <token>' (see /docs)."
      : `The map's data could not be read: ${error.message}`;
    data.error = message;
    $("status").innerHTML = `<span class="warn">${esc(message)}</span>`;
    $("region-body").innerHTML = "";
  }

  // For tests and the console: the map, the state, and a promise that the first view is drawn.
  window.atlas = { map, state, data, setAt, selectRegion, render, shownFeatures, whenIdle, ready: start() };
})();
