// keras-latent explorer: the page's logic. It only calls the JSON API (docs/explore.md); no framework, no build.
"use strict";

const PAGE_SIZE = 200;
const state = {
  model: null,      // GET /api/model
  view: null,       // GET /api/images/<id>
  masks: {},        // layer -> array of 0/1, one per channel
  requests: {},     // layer -> {seq, controller}: only the latest request of a layer may update the page
  offset: 0,
};

const $ = (selector, root = document) => root.querySelector(selector);

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// ------------------------------------------------------------------ API calls and errors

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error : `${response.status} ${response.statusText} (${path})`);
  }
  return body;
}

function postJSON(path, body, signal) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body), signal});
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("#error").hidden = true;
  $("#error").textContent = "";
}

// ------------------------------------------------------------------ probabilities

function renderProbabilities(container, probabilities, intact, label) {
  container.replaceChildren();
  container.classList.toggle("intact-only", !intact);
  const best = probabilities.indexOf(Math.max(...probabilities));
  state.model.classes.forEach((name, i) => {
    const nameCell = element("span", {className: "prob-name", textContent: name});
    if (i === best) nameCell.classList.add("predicted");
    if (name === label) nameCell.classList.add("true-label");
    const track = element("span", {className: "prob-track prob-row"});
    if (intact) {
      const ghost = element("span", {className: "prob-ghost"});
      ghost.style.width = `${(100 * intact[i]).toFixed(1)}%`;
      track.append(ghost);
    }
    const fill = element("span", {className: "prob-fill"});
    fill.style.width = `${(100 * probabilities[i]).toFixed(1)}%`;
    track.append(fill);
    track.title = intact ? `${name}: ${probabilities[i].toFixed(3)} masked, ${intact[i].toFixed(3)} intact`
                         : `${name}: ${probabilities[i].toFixed(3)}`;
    container.append(nameCell, track, element("span", {className: "prob-value", textContent: probabilities[i].toFixed(2)}));
  });
}

// ------------------------------------------------------------------ picking an image

function thumbnail(image, caption) {
  const button = element("button", {type: "button", className: "thumb", title: caption, dataset: {id: image.id}},
                         [element("img", {src: image.thumbnail, alt: caption, loading: "lazy", width: 32, height: 32})]);
  button.addEventListener("click", () => selectImage(image.id));
  return button;
}

async function loadImages(reset) {
  if (reset) {
    state.offset = 0;
    $("#thumbnails").replaceChildren();
  }
  const wanted = $("#class-filter").value;
  const query = new URLSearchParams({offset: state.offset, limit: PAGE_SIZE});
  if (wanted) query.set("class", wanted);
  try {
    const page = await api(`/api/images?${query}`);
    if ($("#class-filter").value !== wanted) return;  // the filter changed meanwhile
    for (const image of page.images) $("#thumbnails").append(thumbnail(image, `test image ${image.index}: ${image.label}`));
    state.offset += page.images.length;
    $("#image-count").textContent = `${page.total} test images${wanted ? ` of ${wanted}` : ""}`;
    $("#more").hidden = state.offset >= page.total;
  } catch (err) {
    showError(err.message);
  }
}

async function upload(file) {
  clearError();
  const form = new FormData();
  form.append("image", file);
  try {
    const added = await api("/api/images", {method: "POST", body: form});
    if (!$(`#uploads [data-id="${added.id}"]`)) $("#uploads").prepend(thumbnail(added, `upload: ${file.name}`));
    await selectImage(added.id, file.name);
  } catch (err) {
    showError(`upload of ${file.name} refused: ${err.message}`);
  } finally {
    $("#upload").value = "";
  }
}

async function selectImage(id, fileName) {
  clearError();
  document.body.dataset.loading = "true";
  try {
    const view = await api(`/api/images/${encodeURIComponent(id)}`);
    for (const thumb of document.querySelectorAll(".thumb")) thumb.setAttribute("aria-current", thumb.dataset.id === id);
    renderView(view, fileName);
  } catch (err) {
    showError(err.message);
  } finally {
    delete document.body.dataset.loading;
  }
}

// ------------------------------------------------------------------ the model's view of one image

function renderView(view, fileName) {
  for (const request of Object.values(state.requests)) request.controller.abort();
  state.requests = {};  // a new image: each layer counts its updates (data-seq) from 1 again
  state.view = view;
  $("#empty").hidden = true;
  $("#view").hidden = false;
  $("#view").dataset.image = view.id;
  $("#view-title").textContent = view.source === "test"
    ? `Test image ${view.index}, labelled ${view.label}: predicted ${view.predicted}`
    : `Your upload${fileName ? ` (${fileName})` : ""}: predicted ${view.predicted}`;
  $("#original").src = view.original;
  $("#reconstruction-figure").hidden = !view.reconstruction;
  if (view.reconstruction) $("#reconstruction").src = view.reconstruction;
  renderProbabilities($("#probabilities"), view.probabilities, null, view.label);
  $("#layers").replaceChildren(...state.model.layers.map(layer => renderLayer(layer, view)));
}

function renderLayer(layerInfo, view) {
  const name = layerInfo.name;
  const data = view.layers[name];
  state.masks[name] = new Array(data.channels).fill(1);
  const ranking = layerInfo.test_ranking && layerInfo.test_ranking.length
    ? `test-set ablation (analysis.json), most needed first: ${layerInfo.test_ranking.join(", ")}` : "";
  const section = element("section", {className: "layer", dataset: {layer: name, seq: "0"}}, [
    element("div", {className: "layer-head"}, [
      element("h3", {textContent: `${name}: ${data.channels} channels`,
                     title: `decoded along the ${layerInfo.decode_path} path (analysis.md, Faithful decoding)`}),
      element("span", {className: "note", textContent: `decoded along the ${layerInfo.decode_path} path`}),
      element("span", {className: "note", textContent: ranking}),
    ]),
  ]);
  const list = element("input", {className: "channel-list", type: "text", placeholder: "channels, e.g. 3,5,7",
                                 "aria-label": `${name} channels for Keep only and Drop`});
  const controls = element("div", {className: "controls"}, [list]);
  for (const [action, label] of [["keep", "Keep only"], ["drop", "Drop"], ["invert", "Invert"], ["reset", "Reset"]]) {
    const button = element("button", {type: "button", textContent: label, dataset: {action}});
    button.addEventListener("click", () => applyAction(name, action));
    controls.append(button);
  }
  controls.append(element("span", {className: "status"}));
  section.append(controls);

  const maskedImage = element("img", {className: "big masked-reconstruction", alt: `decoded from ${name} with the mask`});
  if (data.decoded_all) maskedImage.src = data.decoded_all;
  const allImage = element("img", {className: "big", alt: `decoded from ${name}, every channel`});
  if (data.decoded_all) allImage.src = data.decoded_all;
  const pair = element("div", {className: "pair"}, view.reconstruction ? [
    element("figure", {}, [allImage, element("figcaption", {textContent: `decoded from ${name}, every channel`})]),
    element("figure", {}, [maskedImage, element("figcaption", {textContent: `decoded from ${name}, masked`})]),
  ] : []);
  const probs = element("div", {className: "probs masked-probs"});
  const masked = element("div", {className: "masked"}, [
    pair, element("h3", {textContent: "probabilities, masked (pale: intact)"}), probs,
    element("p", {className: "prediction"}), element("p", {className: "note timing"}),
  ]);
  const tiles = element("div", {className: "tiles"});
  const strongest = Math.max(...data.strength, 1e-9);
  const mostImportant = data.importance.indexOf(Math.max(...data.importance));
  data.strength.forEach((strength, c) => tiles.append(renderTile(name, c, data, strength / strongest, c === mostImportant)));
  section.append(element("div", {className: "layer-body"}, [masked, tiles]));
  showMasked(section, view.probabilities, null);
  return section;
}

function renderTile(layer, c, data, relativeStrength, mostImportant) {
  const importance = data.importance[c];
  const flips = data.flips_to[c];
  const bar = element("span");
  bar.style.width = `${(100 * relativeStrength).toFixed(0)}%`;
  const delta = element("span", {
    className: `importance${importance > 0.005 ? " hurts" : ""}${mostImportant ? " best" : ""}`,
    textContent: `Δ ${importance >= 0 ? "−" : "+"}${Math.abs(importance).toFixed(2)}${flips ? ` → ${flips}` : ""}`,
  });
  const tile = element("button", {
    type: "button", className: "tile", "aria-pressed": "true", dataset: {channel: c},
    title: `channel ${c}: mean activation ${data.strength[c].toFixed(3)}; zeroing it alone changes the predicted ` +
           `class's probability by ${(-importance).toFixed(3)}${flips ? ` and flips the prediction to ${flips}` : ""}` +
           `${mostImportant ? " (the most important channel for this image)" : ""}`,
  }, [
    data.channel_images[c] ? element("img", {src: data.channel_images[c], alt: `${layer} channel ${c} decoded alone`})
                           : element("span"),
    element("span", {className: "tile-head"}, [element("b", {textContent: `ch ${c}`}),
                                               element("span", {className: "tile-state", textContent: "on"})]),
    element("span", {className: "strength"}, [bar]),
    delta,
  ]);
  tile.addEventListener("click", event => {
    if (event.shiftKey) toggleListed(layer, c);
    else setMask(layer, state.masks[layer].map((on, i) => (i === c ? 1 - on : on)));
  });
  return tile;
}

function layerSection(layer) {
  return $(`.layer[data-layer="${layer}"]`);
}

function showMasked(section, probabilities, milliseconds) {
  const layer = section.dataset.layer;
  const mask = state.masks[layer];
  const kept = mask.reduce((a, b) => a + b, 0);
  section.dataset.kept = kept;
  for (const tile of section.querySelectorAll(".tile")) {
    const on = mask[Number(tile.dataset.channel)] > 0;
    tile.setAttribute("aria-pressed", on);
    $(".tile-state", tile).textContent = on ? "on" : "off";
  }
  $(".status", section).textContent = `${kept} of ${mask.length} channels on`;
  renderProbabilities($(".masked-probs", section), probabilities, state.view.probabilities, state.view.label);
  const best = probabilities.indexOf(Math.max(...probabilities));
  const name = state.model.classes[best];
  const line = $(".prediction", section);
  line.replaceChildren(`masked model predicts ${name} (${probabilities[best].toFixed(2)})`);
  if (name !== state.view.predicted) {
    line.append(" ", element("span", {className: "flip", textContent: `— flipped from ${state.view.predicted}`}));
  }
  $(".timing", section).textContent = milliseconds === null ? "" : `updated in ${milliseconds.toFixed(0)} ms`;
}

// ------------------------------------------------------------------ masks

function setMask(layer, mask) {
  state.masks[layer] = mask;
  refresh(layer);
}

function listedChannels(layer) {
  const section = layerSection(layer);
  const text = $(".channel-list", section).value.trim();
  const n = state.masks[layer].length;
  if (!text) throw new Error(`type ${layer} channels first (e.g. 3,5,7), or shift-click tiles`);
  const channels = text.split(/[\s,]+/).filter(Boolean).map(Number);
  const bad = channels.filter(c => !Number.isInteger(c) || c < 0 || c >= n);
  if (bad.length) throw new Error(`${layer} has channels 0..${n - 1}; got ${bad.join(", ")}`);
  return channels;
}

function toggleListed(layer, c) {
  const section = layerSection(layer);
  const input = $(".channel-list", section);
  const channels = input.value.split(/[\s,]+/).filter(Boolean).map(Number);
  const next = channels.includes(c) ? channels.filter(x => x !== c) : [...channels, c];
  input.value = next.join(",");
  for (const tile of section.querySelectorAll(".tile")) {
    tile.classList.toggle("listed", next.includes(Number(tile.dataset.channel)));
  }
}

function applyAction(layer, action) {
  clearError();
  const mask = state.masks[layer];
  try {
    if (action === "keep") {
      const keep = listedChannels(layer);
      setMask(layer, mask.map((_, i) => (keep.includes(i) ? 1 : 0)));
    } else if (action === "drop") {
      const drop = listedChannels(layer);
      setMask(layer, mask.map((_, i) => (drop.includes(i) ? 0 : 1)));
    } else if (action === "invert") {
      setMask(layer, mask.map(on => 1 - on));
    } else {
      setMask(layer, mask.map(() => 1));
    }
  } catch (err) {
    showError(err.message);
  }
}

// Decode and classify with the layer's mask (two API calls, run at once); a newer click cancels an older one.
async function refresh(layer) {
  const section = layerSection(layer);
  const previous = state.requests[layer];
  if (previous) previous.controller.abort();
  const request = {seq: (previous ? previous.seq : 0) + 1, controller: new AbortController()};
  state.requests[layer] = request;
  const body = {image: state.view.id, layer, mask: state.masks[layer]};
  const started = performance.now();
  section.dataset.pending = "true";
  try {
    const [decoded, classified] = await Promise.all([
      state.model.has_decoder ? postJSON("/api/decode", body, request.controller.signal) : Promise.resolve(null),
      postJSON("/api/classify", body, request.controller.signal),
    ]);
    if (state.requests[layer] !== request || state.view.id !== body.image) return;
    if (decoded) $(".masked-reconstruction", section).src = decoded.reconstruction;
    showMasked(section, classified.probabilities, performance.now() - started);
    section.dataset.seq = request.seq;
  } catch (err) {
    if (err.name !== "AbortError") showError(err.message);
  } finally {
    if (state.requests[layer] === request) delete section.dataset.pending;
  }
}

// ------------------------------------------------------------------ start

async function start() {
  try {
    state.model = await api("/api/model");
  } catch (err) {
    showError(`cannot reach the explorer's API: ${err.message}`);
    return;
  }
  const m = state.model;
  $("#run-info").textContent = `run ${m.run}: ${m.dataset}; layers ${m.layers.map(l => `${l.name} (${l.channels})`).join(", ")}` +
                               (m.has_decoder ? "" : "; no decoder: probabilities only");
  for (const name of m.classes) $("#class-filter").append(element("option", {value: name, textContent: name}));
  $("#class-filter").addEventListener("change", () => loadImages(true));
  $("#more").addEventListener("click", () => loadImages(false));
  $("#upload").addEventListener("change", event => { if (event.target.files.length) upload(event.target.files[0]); });
  await loadImages(true);
  document.body.dataset.ready = "true";
}

start();
