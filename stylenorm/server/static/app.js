// The stylenorm web page: plain JavaScript, no build step, talks to the /v1 API of the same server.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    apiKey: sessionStorage.getItem("stylenorm-api-key") || "",
    model: null,          // GET /v1/models/{name}
    selected: [],         // chosen styles: {kind: "name", name} | {kind: "file", file, url}, each with a weight
    content: null,        // the content File
    urls: {},             // object URLs to revoke: {content, result, synth}
    paint: null,          // spade canvas state
  };

  // ----------------------------------------------------------------------------- API calls

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function headers() {
    return state.apiKey ? { "X-API-Key": state.apiKey } : {};
  }

  async function api(path, options = {}) {
    const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
    if (response.ok) return response;
    let status = response.status, code = "http_error", message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) ({ status, code, message } = body.error);
    } catch (_) { /* not our JSON body: keep the status line */ }
    if (status === 401) $("auth-box").hidden = false;
    if (response.headers.get("Retry-After")) message += ` (retry in ${response.headers.get("Retry-After")} s)`;
    throw new ApiError(status, code, message);
  }

  function showError(err) {
    const box = $("error");
    if (!err) { box.hidden = true; box.textContent = ""; return; }
    box.textContent = err instanceof ApiError ? `${err.message} [${err.status} ${err.code}]` : String(err.message || err);
    box.hidden = false;
  }

  function setStatus(text) { $("status").textContent = text; }

  function swapUrl(slot, blob) {
    if (state.urls[slot]) URL.revokeObjectURL(state.urls[slot]);
    state.urls[slot] = blob ? URL.createObjectURL(blob) : null;
    return state.urls[slot];
  }

  async function busy(button, work) {
    button.disabled = true;
    showError(null);
    try { await work(); } catch (err) { showError(err); } finally { button.disabled = false; }
  }

  // ----------------------------------------------------------------------------- models

  async function loadModels() {
    let list;
    for (;;) {
      list = await (await api("/v1/models")).json();
      if (list.ready) break;
      setStatus("Models are loading…");
      await new Promise((r) => setTimeout(r, 1000));
    }
    const select = $("model-select");
    select.replaceChildren();
    for (const m of list.available) {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = `${m.name} (${m.architecture})`;
      select.append(option);
    }
    const box = $("unavailable-box");
    box.hidden = list.unavailable.length === 0;
    $("unavailable").replaceChildren(...list.unavailable.map((u) => {
      const li = document.createElement("li");
      li.textContent = `${u.name}: ${u.reason}`;
      return li;
    }));
    if (list.available.length === 0) {
      setStatus("No model is loaded: put model folders in models/ and restart the server.");
      return;
    }
    setStatus(`${list.available.length} model(s) ready.`);
    const wanted = new URLSearchParams(location.search).get("model");
    if (wanted && list.available.some((m) => m.name === wanted)) select.value = wanted;
    await selectModel(select.value);
  }

  async function selectModel(name) {
    showError(null);
    delete document.body.dataset.model;
    state.selecting = name;
    const model = await (await api(`/v1/models/${encodeURIComponent(name)}`)).json();
    if (state.selecting !== name) return;  // another model was picked meanwhile
    state.model = model;
    $("model-info").textContent = model.description || "";
    // optimise models (Gatys et al.) take the stylize panel's inputs; their work is a polled job
    const panel = model.kind === "optimise" ? "stylize" : model.kind;
    for (const kind of ["stylize", "synthesize", "generate"]) $(`${kind}-panel`).hidden = panel !== kind;
    if (panel === "stylize") setupStylize(model);
    else if (model.kind === "synthesize") setupSynthesize(model);
    else setupGenerate(model);
    document.body.dataset.model = model.name;  // the page is set up for this model
  }

  // ----------------------------------------------------------------------------- stylize

  function setupStylize(model) {
    const o = model.options;
    state.selected = [];
    $("style-box").hidden = o.max_styles === 0;
    $("style-upload").hidden = !o.uploaded_styles;
    $("alpha-row").hidden = !o.alpha;
    $("preserve-row").hidden = !o.preserve_color;
    $("preserve-color").checked = false;
    const alpha = o.default_alpha ?? 1;
    $("alpha").value = String(alpha);
    $("alpha-value").textContent = Number(alpha).toFixed(2);
    const hints = [];
    if (o.max_styles === 1) hints.push("Pick one style from the gallery or upload one.");
    else if (o.weights) hints.push("Pick one or more styles; several are mixed by their weights.");
    $("style-hint").textContent = hints.join(" ");
    buildGallery(model);
    renderSelected();
  }

  function buildGallery(model) {
    const gallery = $("gallery");
    gallery.replaceChildren();
    if (!model.options.named_styles) return;
    for (const name of model.styles) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "thumb";
      button.dataset.style = name;
      button.setAttribute("aria-pressed", "false");
      const picture = document.createElement("img");
      picture.alt = "";
      const label = document.createElement("span");
      label.textContent = name;
      button.append(picture, label);
      button.addEventListener("click", () => toggleNamed(name));
      gallery.append(button);
      const url = model.thumbnails[name];
      if (url) {
        // fetched (not <img src>) so the API key header goes along when the server wants one
        api(url).then((r) => r.blob()).then((b) => { picture.src = URL.createObjectURL(b); })
          .catch(() => { picture.replaceWith(Object.assign(document.createElement("span"), { className: "swatch" })); });
      } else {
        picture.replaceWith(Object.assign(document.createElement("span"), { className: "swatch" }));
      }
    }
  }

  function maxStyles() {
    const m = state.model.options.max_styles;
    return m === null || m === undefined ? Infinity : m;
  }

  function addStyle(entry) {
    if (maxStyles() === 1) state.selected = [];
    if (state.selected.length >= maxStyles()) {
      showError(new Error(`This model takes at most ${maxStyles()} styles.`));
      return;
    }
    state.selected.push({ weight: 1, ...entry });
    renderSelected();
  }

  function toggleNamed(name) {
    const at = state.selected.findIndex((s) => s.kind === "name" && s.name === name);
    if (at >= 0) { state.selected.splice(at, 1); renderSelected(); } else addStyle({ kind: "name", name });
  }

  function renderSelected() {
    for (const b of $("gallery").querySelectorAll(".thumb")) {
      const on = state.selected.some((s) => s.kind === "name" && s.name === b.dataset.style);
      b.setAttribute("aria-pressed", String(on));
    }
    const list = $("selected-styles");
    list.replaceChildren();
    const mixing = state.model.options.weights && state.selected.length > 1;
    state.selected.forEach((s, i) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = s.kind === "name" ? s.name : s.file.name;
      name.title = name.textContent;
      li.append(name);
      if (mixing) {
        const slider = Object.assign(document.createElement("input"), {
          type: "range", min: "0", max: "1", step: "0.05", value: String(s.weight),
        });
        slider.setAttribute("aria-label", `weight of ${name.textContent}`);
        slider.className = "weight";
        const out = document.createElement("output");
        out.textContent = Number(s.weight).toFixed(2);
        slider.addEventListener("input", () => { s.weight = Number(slider.value); out.textContent = s.weight.toFixed(2); });
        li.append(slider, out);
      }
      const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "✕" });
      remove.setAttribute("aria-label", `remove ${name.textContent}`);
      remove.addEventListener("click", () => { state.selected.splice(i, 1); renderSelected(); });
      li.append(remove);
      list.append(li);
    });
  }

  function stylizeForm() {
    const o = state.model.options;
    if (!state.content) throw new Error("Choose a content image first.");
    if (state.selected.length < o.min_styles) throw new Error("Pick a style from the gallery or upload one.");
    const form = new FormData();
    form.append("model", state.model.name);
    form.append("content", state.content);
    // the API wants weights in this order: uploaded files first, then named styles
    const uploads = state.selected.filter((s) => s.kind === "file");
    const names = state.selected.filter((s) => s.kind === "name");
    for (const s of uploads) form.append("style", s.file);
    for (const s of names) form.append("styles", s.name);
    if (o.weights && state.selected.length > 1) {
      const ordered = [...uploads, ...names];
      if (ordered.every((s) => s.weight === 0)) throw new Error("At least one weight must be above 0.");
      for (const s of ordered) form.append("weights", String(s.weight));
    }
    if (o.alpha) form.append("alpha", $("alpha").value);
    if (o.preserve_color && $("preserve-color").checked) form.append("preserve_color", "true");
    const side = $("max-side").value.trim();
    if (side) form.append("max_side", side);
    form.append("format", $("format").value);
    return form;
  }

  async function runStylize() {
    const form = stylizeForm();
    setStatus("Stylizing…");
    const started = performance.now();
    const response = state.model.kind === "optimise"
      ? await runOptimise(form, started)
      : await api("/v1/stylize", { method: "POST", body: form });
    const blob = await response.blob();
    const img = $("result");
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = () => reject(new Error("the result could not be shown"));
      img.src = swapUrl("result", blob);
    });
    img.hidden = false;
    $("result-size").textContent = `${img.naturalWidth}×${img.naturalHeight}`;
    const link = $("download");
    link.href = img.src;
    link.download = `stylized.${$("format").value === "jpeg" ? "jpg" : $("format").value}`;
    link.hidden = false;
    setStatus(`Done in ${Math.round(performance.now() - started)} ms.`);
  }

  // An optimisation is a job: queue it, poll its progress, then fetch the image (errors throw from api()).
  async function runOptimise(form, started) {
    const model = state.model.name;
    let job = await (await api("/v1/optimise", { method: "POST", body: form })).json();
    while (job.state === "queued" || job.state === "running") {
      const seconds = Math.round((performance.now() - started) / 1000);
      setStatus(job.state === "queued"
        ? `Queued behind ${job.queue_position} job(s)… ${seconds} s`
        : `Optimising: iteration ${job.step} of ${job.steps}… ${seconds} s`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (state.model.name !== model) {  // another model was picked: stop the job, drop its result
        await api(job.status_url, { method: "DELETE" }).catch(() => {});
        throw new Error("Cancelled: another model was selected.");
      }
      job = await (await api(job.status_url)).json();
    }
    return api(job.result_url);
  }

  // ----------------------------------------------------------------------------- spade: painting

  // Pure helpers on a label array (Uint8Array of h·w class indices); exposed for the browser test.
  function paintDisc(labels, w, h, cx, cy, radius, value) {
    const r2 = radius * radius;
    for (let y = Math.max(0, Math.floor(cy - radius)); y <= Math.min(h - 1, Math.ceil(cy + radius)); y++) {
      for (let x = Math.max(0, Math.floor(cx - radius)); x <= Math.min(w - 1, Math.ceil(cx + radius)); x++) {
        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r2) labels[y * w + x] = value;
      }
    }
  }

  function floodFill(labels, w, h, x0, y0, value) {
    const target = labels[y0 * w + x0];
    if (target === value) return 0;
    const stack = [y0 * w + x0];
    let filled = 0;
    while (stack.length) {
      const i = stack.pop();
      if (labels[i] !== target) continue;
      labels[i] = value;
      filled++;
      const x = i % w, y = (i - x) / w;
      if (x > 0) stack.push(i - 1);
      if (x < w - 1) stack.push(i + 1);
      if (y > 0) stack.push(i - w);
      if (y < h - 1) stack.push(i + w);
    }
    return filled;
  }

  window.stylenormPaint = { paintDisc, floodFill };

  function setupSynthesize(model) {
    const [h, w] = model.size || [64, 64];
    const classes = model.classes || [];
    const palette = model.palette || classes.map((_, i) => [(i * 67) % 256, (i * 131) % 256, (i * 199) % 256]);
    const canvas = $("label-canvas");
    canvas.width = w;
    canvas.height = h;
    $("canvas-size").textContent = `${w}×${h}`;
    state.paint = { w, h, labels: new Uint8Array(w * h), palette, current: classes.length > 1 ? 1 : 0, drawing: false };
    const list = $("class-list");
    list.replaceChildren(...classes.map((name, i) => {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "class-chip";
      chip.setAttribute("role", "radio");
      chip.dataset.index = String(i);
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.style.background = `rgb(${palette[i].join(",")})`;
      const label = document.createElement("span");
      label.textContent = i === 0 ? `${name} (eraser)` : name;
      chip.append(dot, label);
      chip.addEventListener("click", () => { state.paint.current = i; markClass(); });
      return chip;
    }));
    markClass();
    renderLabels();
  }

  function markClass() {
    for (const chip of $("class-list").children) {
      chip.setAttribute("aria-checked", String(Number(chip.dataset.index) === state.paint.current));
    }
  }

  function renderLabels() {
    const p = state.paint;
    const ctx = $("label-canvas").getContext("2d");
    const image = ctx.createImageData(p.w, p.h);
    for (let i = 0; i < p.labels.length; i++) {
      const c = p.palette[p.labels[i]] || [0, 0, 0];
      image.data[4 * i] = c[0];
      image.data[4 * i + 1] = c[1];
      image.data[4 * i + 2] = c[2];
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  function tool() {
    return document.querySelector('input[name="tool"]:checked').value;
  }

  function canvasPoint(event) {
    const canvas = $("label-canvas");
    const rect = canvas.getBoundingClientRect();
    return [
      Math.floor(((event.clientX - rect.left) / rect.width) * canvas.width),
      Math.floor(((event.clientY - rect.top) / rect.height) * canvas.height),
    ];
  }

  function paintAt(event, stroke) {
    const p = state.paint;
    const [x, y] = canvasPoint(event);
    const value = tool() === "eraser" ? 0 : p.current;
    if (tool() === "fill") {
      if (x >= 0 && y >= 0 && x < p.w && y < p.h) floodFill(p.labels, p.w, p.h, x, y, value);
    } else {
      const radius = Number($("brush-size").value) / 2;
      // pointer events come sparsely during a fast stroke: fill the segment from the last point
      const [x0, y0] = stroke && p.last ? p.last : [x, y];
      const steps = Math.max(1, Math.ceil(Math.hypot(x - x0, y - y0) / Math.max(0.5, radius / 2)));
      for (let i = 0; i <= steps; i++) {
        paintDisc(p.labels, p.w, p.h, x0 + ((x - x0) * i) / steps, y0 + ((y - y0) * i) / steps, radius, value);
      }
      p.last = [x, y];
    }
    renderLabels();
  }

  function wireCanvas() {
    const canvas = $("label-canvas");
    canvas.addEventListener("pointerdown", (e) => {
      if (!state.paint) return;
      canvas.setPointerCapture(e.pointerId);
      state.paint.drawing = tool() !== "fill";
      paintAt(e, false);
    });
    canvas.addEventListener("pointermove", (e) => { if (state.paint && state.paint.drawing) paintAt(e, true); });
    const stop = () => { if (state.paint) { state.paint.drawing = false; state.paint.last = null; } };
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    $("brush-size").addEventListener("input", () => { $("brush-value").textContent = $("brush-size").value; });
    $("clear-canvas").addEventListener("click", () => { state.paint.labels.fill(0); renderLabels(); });
  }

  async function runSynthesize() {
    // the canvas holds exactly the palette colours (putImageData, no smoothing): a colour-coded label PNG
    const blob = await new Promise((resolve) => $("label-canvas").toBlob(resolve, "image/png"));
    const form = new FormData();
    form.append("model", state.model.name);
    form.append("labels", blob, "labels.png");
    const style = $("synth-style-input").files[0];
    if (style) form.append("style", style);
    const seed = $("seed").value.trim();
    if (seed) form.append("seed", seed);
    setStatus("Synthesizing…");
    const response = await api("/v1/synthesize", { method: "POST", body: form });
    const img = $("synth-result");
    img.src = swapUrl("synth", await response.blob());
    img.hidden = false;
    $("synth-seed").textContent = `seed ${response.headers.get("X-Seed") || "?"}`;
    setStatus("Done.");
  }

  // ----------------------------------------------------------------------------- cgan

  function setupGenerate(model) {
    $("gen-class").replaceChildren(...(model.classes || []).map((name) => {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      return option;
    }));
  }

  async function runGenerate() {
    const body = { model: state.model.name, class_name: $("gen-class").value, count: Number($("gen-count").value) };
    const seed = $("gen-seed").value.trim();
    if (seed) body.seed = Number(seed);
    setStatus("Generating…");
    const response = await api("/v1/generate", {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    });
    const result = await response.json();
    $("gen-results").replaceChildren(...result.images.map((b64) => {
      const img = document.createElement("img");
      img.src = `data:${result.media_type};base64,${b64}`;
      img.alt = result.class_name;
      return img;
    }));
    setStatus(`Done (seed ${result.seed}).`);
  }

  // ----------------------------------------------------------------------------- wiring

  function wire() {
    $("model-select").addEventListener("change", (e) => selectModel(e.target.value).catch(showError));
    $("content-input").addEventListener("change", (e) => {
      state.content = e.target.files[0] || null;
      const img = $("content-preview");
      if (!state.content) { img.hidden = true; return; }
      img.onload = () => { $("content-size").textContent = `${img.naturalWidth}×${img.naturalHeight}`; };
      img.src = swapUrl("content", state.content);
      img.hidden = false;
    });
    $("style-input").addEventListener("change", (e) => {
      for (const file of e.target.files) addStyle({ kind: "file", file });
      e.target.value = "";
    });
    $("alpha").addEventListener("input", () => { $("alpha-value").textContent = Number($("alpha").value).toFixed(2); });
    $("stylize-button").addEventListener("click", (e) => busy(e.currentTarget, runStylize));
    $("synthesize-button").addEventListener("click", (e) => busy(e.currentTarget, runSynthesize));
    $("generate-button").addEventListener("click", (e) => busy(e.currentTarget, runGenerate));
    $("auth-box").addEventListener("submit", (e) => {
      e.preventDefault();
      state.apiKey = $("api-key").value;
      sessionStorage.setItem("stylenorm-api-key", state.apiKey);
      $("auth-box").hidden = true;
      start();
    });
    wireCanvas();
  }

  function start() {
    showError(null);
    loadModels().catch((err) => { setStatus(""); showError(err); });
  }

  wire();
  start();
})();
