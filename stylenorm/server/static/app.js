// The stylenorm web page: plain JavaScript, no build step, talks to the /v1 API of the same server.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TASK_OF_KIND = { stylize: "stylize", optimise: "stylize", synthesize: "synthesize", generate: "generate" };
  const MAX_RETRIES = 3;       // a 503 is retried this often, each after the server's Retry-After
  const MAX_HISTORY = 12;      // results kept in the strip (older ones are dropped, their memory freed)
  const MAX_UNDO = 50;
  const state = {
    apiKey: sessionStorage.getItem("stylenorm-api-key") || "",
    models: [],           // GET /v1/models: available summaries
    task: null,           // "stylize" | "synthesize" | "generate"
    lastModel: {},        // task -> the model last picked for it
    model: null,          // GET /v1/models/{name}
    selected: [],         // chosen styles: {kind: "name", name, url} | {kind: "file", file, url}, each with a weight
    content: null,        // the content File (a sample, an upload, a drop or a paste)
    urls: {},             // object URLs the page shows, by slot (content, synth): swapUrl frees the old one
    run: null,            // the AbortController of the request in flight
    history: [],          // {resultUrl, contentUrl, caption, filename, width, height}
    current: null,        // the history entry on show
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

  // What each status means to someone using the page; the server's own message follows it.
  const PLAIN = {
    400: "The request was not accepted",
    401: "This server needs an API key",
    403: "This API key may not do that",
    404: "Not found",
    408: "The upload was too slow",
    413: "That is too large for this server",
    415: "That file is not an image this server reads",
    422: "The server cannot use these inputs",
    429: "Too many requests: wait a moment and try again",
    500: "Something went wrong on the server",
    503: "The server is busy",
    504: "The server took too long",
  };

  function headers() {
    return state.apiKey ? { "X-API-Key": state.apiKey } : {};
  }

  function retryAfter(response) {
    const seconds = Number(response.headers.get("Retry-After"));
    return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 60) : 2;
  }

  async function errorOf(response) {
    let status = response.status, code = "http_error", message = response.statusText || "";
    try {
      const body = await response.json();
      if (body && body.error) ({ status, code, message } = body.error);
    } catch (_) { /* not our JSON body: keep the status line */ }
    if (status === 401) $("auth-box").hidden = false;
    return new ApiError(status, code, message);
  }

  // fetch with the API key; a 503 is retried after its Retry-After (at most MAX_RETRIES times) when
  // waiting is given: waiting(seconds, attempt) resolves after the wait, or throws if the user cancelled.
  async function api(path, options = {}, waiting = null) {
    for (let attempt = 1; ; attempt++) {
      let response;
      try {
        response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
      } catch (err) {
        if (err.name === "AbortError") throw err;
        throw new Error("Could not reach the server: check the connection and try again.");
      }
      if (response.ok) return response;
      const err = await errorOf(response);
      if (response.status === 503 && waiting && attempt <= MAX_RETRIES) {
        await waiting(retryAfter(response), attempt);
        continue;
      }
      throw err;
    }
  }

  function describe(err) {
    if (err instanceof ApiError) {
      const plain = PLAIN[err.status] || "The request failed";
      const detail = err.message && err.message !== plain ? `: ${err.message}` : ".";
      return `${plain}${detail} (${err.status} ${err.code})`;
    }
    return String(err.message || err);
  }

  function showError(err) {
    const box = $("error");
    if (!err || err.name === "AbortError") { box.hidden = true; box.textContent = ""; return; }
    box.textContent = describe(err);
    box.hidden = false;
  }

  function setStatus(text) { $("status").textContent = text; }

  function swapUrl(slot, blob) {
    if (state.urls[slot]) URL.revokeObjectURL(state.urls[slot]);
    state.urls[slot] = blob ? URL.createObjectURL(blob) : null;
    return state.urls[slot];
  }

  // ----------------------------------------------------------------------------- progress

  const progress = { timer: null, started: 0, label: "" };

  function startProgress(label) {
    progress.started = performance.now();
    progress.label = label;
    $("progress").hidden = false;
    tickProgress();
    clearInterval(progress.timer);
    progress.timer = setInterval(tickProgress, 250);
  }

  function tickProgress() {
    const seconds = ((performance.now() - progress.started) / 1000).toFixed(1);
    $("progress-text").textContent = `${progress.label} ${seconds} s`;
  }

  function stopProgress() {
    clearInterval(progress.timer);
    progress.timer = null;
    $("progress").hidden = true;
  }

  function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(t); reject(new DOMException("cancelled", "AbortError")); });
    });
  }

  function onProgressLine(text) {
    progress.label = text;
    tickProgress();
  }

  // a waiting() for api(): counts the Retry-After down where report() shows it; cancellable through run
  function retrying(run, report = onProgressLine) {
    return async (seconds, attempt) => {
      for (let left = seconds; left > 0; left--) {
        report(`The server is busy: trying again in ${left} s (attempt ${attempt + 1} of ${MAX_RETRIES + 1})…`);
        await sleep(1000, run.signal);
      }
      report("Trying again…");
    };
  }

  // ----------------------------------------------------------------------------- models and tasks

  async function loadModels() {
    let list;
    for (;;) {
      list = await (await api("/v1/models")).json();
      if (list.ready) break;
      setStatus("Models are loading…");
      await sleep(1000);
    }
    state.models = list.available;
    const box = $("unavailable-box");
    box.hidden = list.unavailable.length === 0;
    $("unavailable").replaceChildren(...list.unavailable.map((u) => {
      const li = document.createElement("li");
      li.textContent = `${u.name}: ${u.reason}`;
      return li;
    }));
    for (const tab of document.querySelectorAll("#tasks [role=tab]")) {
      tab.hidden = !state.models.some((m) => TASK_OF_KIND[m.kind] === tab.dataset.task);
    }
    if (state.models.length === 0) {
      setStatus("No model is loaded: put model folders in models/ and restart the server.");
      return;
    }
    setStatus("");
    const wanted = new URLSearchParams(location.search).get("model");
    const first = state.models.find((m) => m.name === wanted)
      || state.models.find((m) => TASK_OF_KIND[m.kind] === "stylize") || state.models[0];
    await setTask(TASK_OF_KIND[first.kind], first.name);
  }

  async function setTask(task, name) {
    state.task = task;
    for (const tab of document.querySelectorAll("#tasks [role=tab]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.task === task));
    }
    const models = state.models.filter((m) => TASK_OF_KIND[m.kind] === task);
    const select = $("model-select");
    select.replaceChildren(...models.map((m) => {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = m.name;
      return option;
    }));
    select.value = name || state.lastModel[task] || models[0].name;
    await selectModel(select.value);
  }

  function firstSentence(text) {
    const match = /^.*?[.!?](?=\s|$)/s.exec(text || "");
    const line = (match ? match[0] : text || "").trim();
    return line.length > 180 ? `${line.slice(0, 177)}…` : line;
  }

  function facts(model) {
    const p = model.provenance || {};
    const out = [["architecture", model.architecture]];
    if (model.license) out.push(["licence", model.license]);
    if (p.steps) out.push(["training steps", String(p.steps)]);
    if (p.images_seen) out.push(["images seen", String(p.images_seen)]);
    if (p.wall_time_s) out.push(["training time", `${Math.round(p.wall_time_s / 60)} min`]);
    if (p.resolution) out.push(["trained at", `${p.resolution} px`]);
    if (p.hardware) out.push(["hardware", typeof p.hardware === "string" ? p.hardware : JSON.stringify(p.hardware)]);
    return out;
  }

  async function selectModel(name) {
    showError(null);
    delete document.body.dataset.model;
    state.selecting = name;
    const model = await (await api(`/v1/models/${encodeURIComponent(name)}`)).json();
    if (state.selecting !== name) return;  // another model was picked meanwhile
    if (state.run) state.run.abort();      // a result for the previous model is no longer wanted
    state.model = model;
    state.lastModel[state.task] = name;
    $("model-info").textContent = firstSentence(model.description);
    $("model-description").textContent = model.description || "";
    $("model-facts").replaceChildren(...facts(model).flatMap(([k, v]) => {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      return [dt, dd];
    }));
    $("model-card").href = `/v1/models/${encodeURIComponent(name)}`;
    $("model-more").hidden = false;
    const panel = TASK_OF_KIND[model.kind];
    for (const kind of ["stylize", "synthesize", "generate"]) $(`${kind}-panel`).hidden = panel !== kind;
    if (panel === "stylize") setupStylize(model);
    else if (panel === "synthesize") await setupSynthesize(model);
    else setupGenerate(model);
    document.body.dataset.model = model.name;  // the page is set up for this model
  }

  // ----------------------------------------------------------------------------- stylize: inputs

  async function loadSamples() {
    let samples = [];
    try { samples = await (await fetch("/static/samples/index.json")).json(); } catch (_) { return; }
    $("samples").replaceChildren(...samples.map((s) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sample";
      button.setAttribute("role", "listitem");
      button.dataset.sample = s.file;
      button.title = `${s.title}: ${s.credit}`;
      button.setAttribute("aria-label", `use the sample photo: ${s.alt}`);
      const img = document.createElement("img");
      img.src = `/static/samples/${s.file}`;
      img.alt = s.alt;
      img.loading = "lazy";
      button.append(img);
      button.addEventListener("click", () => useSample(s).catch(showError));
      return button;
    }));
    const credits = $("sample-credits");
    credits.replaceChildren("Sample photos: ", Object.assign(document.createElement("a"), {
      href: "/static/samples/LICENSES.md", textContent: "credits and licences",
    }));
  }

  async function useSample(sample) {
    const blob = await (await fetch(`/static/samples/${sample.file}`)).blob();
    setContent(new File([blob], sample.file, { type: blob.type || "image/jpeg" }));
  }

  function setContent(file) {
    if (!file) return;
    if (!/^image\//.test(file.type || "image/")) {
      showError(new Error(`${file.name || "That file"} is not an image.`));
      return;
    }
    state.content = file;
    state.current = null;
    const img = $("content-preview");
    img.onload = () => {
      $("content-size").textContent = `photo ${img.naturalWidth}×${img.naturalHeight}`;
      $("compare").style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`;
    };
    img.src = swapUrl("content", file);
    img.hidden = false;
    $("result").hidden = true;
    $("compare-row").hidden = true;
    $("download").hidden = true;
    $("result-caption").textContent = "";
    $("result-size").textContent = "";
    $("empty-hint").hidden = true;
    for (const b of $("samples").children) b.setAttribute("aria-pressed", String(b.dataset.sample === file.name));
    autoStylize();
  }

  function setupStylize(model) {
    const o = model.options;
    clearSelected();
    $("style-box").hidden = o.max_styles === 0;
    $("style-upload").hidden = !o.uploaded_styles;
    $("alpha-row").hidden = !o.alpha;
    $("preserve-row").hidden = !o.preserve_color;
    $("preserve-color").checked = false;
    const alpha = o.default_alpha ?? 1;
    $("alpha").value = String(alpha);
    $("alpha-value").textContent = Number(alpha).toFixed(2);
    const hints = [];
    if (o.named_styles && model.styles.length) hints.push("Click a style to apply it.");
    if (mixable()) hints.push("+ adds a style to a mix.");
    if (o.uploaded_styles) hints.push("Or use an image of your own.");
    $("style-hint").textContent = hints.join(" ");
    $("stylize-button").textContent = model.kind === "optimise" ? "Paint it (slow)" : "Stylize";
    buildGallery(model);
    // a style is chosen from the start, so a photo alone gives a result
    if (o.named_styles && model.styles.length && o.min_styles > 0) {
      state.selected = [{ kind: "name", name: model.styles[0], weight: 1, url: null }];
    }
    renderSelected();
  }

  // forget the chosen styles, freeing the object URLs of uploaded ones
  function clearSelected() {
    for (const s of state.selected) if (s.kind === "file") URL.revokeObjectURL(s.url);
    state.selected = [];
  }

  function mixable() {
    const o = state.model.options;
    return o.weights && maxStyles() > 1;
  }

  function buildGallery(model) {
    const gallery = $("gallery");
    gallery.replaceChildren();
    if (!model.options.named_styles) return;
    for (const name of model.styles) {
      const wrap = document.createElement("div");
      wrap.className = "thumb-wrap";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "thumb";
      button.dataset.style = name;
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-label", `apply the style ${name}`);
      const picture = document.createElement("img");
      picture.alt = `the style ${name}`;
      const label = document.createElement("span");
      label.textContent = name;
      button.append(picture, label);
      button.addEventListener("click", () => applyNamed(name));
      wrap.append(button);
      if (mixable()) {
        const add = document.createElement("button");
        add.type = "button";
        add.className = "mix-toggle";
        add.dataset.style = name;
        add.textContent = "+";
        add.setAttribute("aria-label", `add ${name} to the mix`);
        add.setAttribute("aria-pressed", "false");
        add.addEventListener("click", () => toggleMix(name));
        wrap.append(add);
      }
      gallery.append(wrap);
      const url = model.thumbnails[name];
      if (url) {
        // fetched (not <img src>) so the API key header goes along when the server wants one
        api(url).then((r) => r.blob()).then((b) => {
          picture.src = URL.createObjectURL(b);
          const chosen = state.selected.find((s) => s.kind === "name" && s.name === name);
          if (chosen) { chosen.url = picture.src; renderMixBar(); }
        }).catch(() => { picture.replaceWith(Object.assign(document.createElement("span"), { className: "swatch" })); });
      } else {
        picture.replaceWith(Object.assign(document.createElement("span"), { className: "swatch" }));
      }
    }
  }

  function thumbUrl(name) {
    const img = $("gallery").querySelector(`.thumb[data-style="${CSS.escape(name)}"] img`);
    return img && img.src ? img.src : null;
  }

  function maxStyles() {
    const m = state.model.options.max_styles;
    return m === null || m === undefined ? Infinity : m;
  }

  // a click on a thumbnail: that style alone, applied at once when there is a photo
  function applyNamed(name) {
    state.selected = [{ kind: "name", name, weight: 1, url: thumbUrl(name) }];
    renderSelected();
    autoStylize();
  }

  function toggleMix(name) {
    const at = state.selected.findIndex((s) => s.kind === "name" && s.name === name);
    if (at >= 0) state.selected.splice(at, 1);
    else if (state.selected.length >= maxStyles()) {
      showError(new Error(`This model mixes at most ${maxStyles()} styles.`));
      return;
    } else state.selected.push({ kind: "name", name, weight: 1, url: thumbUrl(name) });
    renderSelected();
  }

  function addUploadedStyles(files) {
    const images = [...files].filter((f) => /^image\//.test(f.type));
    if (!images.length) return;
    if (!state.model.options.uploaded_styles) {
      showError(new Error("This model takes only its own styles."));
      return;
    }
    // like a thumbnail, an upload is applied alone; several files at once are a mix where the model mixes
    clearSelected();
    for (const file of images.slice(0, mixable() ? maxStyles() : 1)) {
      state.selected.push({ kind: "file", file, weight: 1, url: URL.createObjectURL(file) });
    }
    renderSelected();
    autoStylize();
  }

  function renderSelected() {
    for (const b of $("gallery").querySelectorAll(".thumb, .mix-toggle")) {
      const on = state.selected.some((s) => s.kind === "name" && s.name === b.dataset.style);
      b.setAttribute("aria-pressed", String(on));
    }
    const list = $("selected-styles");
    list.replaceChildren();
    const mixing = mixable() && state.selected.length > 1;
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
        slider.addEventListener("input", () => {
          s.weight = Number(slider.value);
          out.textContent = s.weight.toFixed(2);
          renderMixBar();
        });
        li.append(slider, out);
      }
      const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "✕" });
      remove.setAttribute("aria-label", `remove ${name.textContent}`);
      remove.addEventListener("click", () => {
        const [gone] = state.selected.splice(i, 1);
        if (gone.kind === "file") URL.revokeObjectURL(gone.url);
        renderSelected();
      });
      li.append(remove);
      list.append(li);
    });
    renderMixBar();
  }

  // the mix as a bar: each chosen style's picture over a width in proportion to its weight
  function renderMixBar() {
    const bar = $("mix-bar");
    const mixing = mixable() && state.selected.length > 1;
    bar.hidden = !mixing;
    if (!mixing) { bar.replaceChildren(); return; }
    const total = state.selected.reduce((sum, s) => sum + s.weight, 0) || 1;
    bar.replaceChildren(...state.selected.map((s) => {
      const part = document.createElement("span");
      part.className = "mix-part";
      part.dataset.style = s.kind === "name" ? s.name : s.file.name;
      part.style.width = `${(100 * s.weight) / total}%`;
      if (s.url) part.style.backgroundImage = `url("${s.url}")`;
      part.title = `${part.dataset.style}: ${Math.round((100 * s.weight) / total)} %`;
      return part;
    }));
  }

  function stylizeForm() {
    const o = state.model.options;
    if (!state.content) throw new Error("Choose a photo first: click a sample, or drop, paste or choose one.");
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

  function ready() {
    const o = state.model && state.model.options;
    return Boolean(o && state.content && state.selected.length >= o.min_styles);
  }

  // a sample, a thumbnail, a drop: run at once when nothing is missing (optimisation is slow: ask first)
  function autoStylize() {
    if (ready() && state.model.kind !== "optimise") runStylize().catch(showError);
  }

  // ----------------------------------------------------------------------------- stylize: running

  function fileStem(name) {
    return (name || "photo").replace(/\.[^.]*$/, "").replace(/[^\w-]+/g, "-").slice(0, 40) || "photo";
  }

  function caption() {
    const styles = state.selected.map((s) => (s.kind === "name" ? s.name : fileStem(s.file.name)));
    return { text: `${fileStem(state.content.name)} × ${styles.join(" + ") || "its own colours"} · ${state.model.name}`,
      stem: [fileStem(state.content.name), state.model.name, ...styles.map(fileStem)].join("-") };
  }

  async function runStylize() {
    const form = stylizeForm();
    if (state.run) state.run.abort();
    const run = new AbortController();
    state.run = run;
    showError(null);
    const { text, stem } = caption();
    const ext = $("format").value === "jpeg" ? "jpg" : $("format").value;
    const contentBlob = state.content;
    startProgress(state.model.kind === "optimise" ? "Queued…" : "Stylizing…");
    try {
      const response = state.model.kind === "optimise"
        ? await runOptimise(form, run)
        : await api("/v1/stylize", { method: "POST", body: form, signal: run.signal }, retrying(run));
      const blob = await response.blob();
      if (state.run !== run) return;
      const seconds = ((performance.now() - progress.started) / 1000).toFixed(1);
      const entry = await addHistory(blob, contentBlob, text, `${stem}.${ext}`);
      showEntry(entry);
      const frame = $("compare").getBoundingClientRect();
      if (frame.top < 0 || frame.bottom > window.innerHeight) $("compare").scrollIntoView({ block: "nearest" });
      setStatus(`Done in ${seconds} s.`);
    } catch (err) {
      if (err.name === "AbortError" && state.run === run) setStatus("Cancelled.");
      throw err;
    } finally {
      if (state.run === run) { state.run = null; stopProgress(); }
    }
  }

  // An optimisation is a job: queue it, poll its progress, then fetch the image (errors throw from api()).
  async function runOptimise(form, run) {
    let job = await (await api("/v1/optimise", { method: "POST", body: form, signal: run.signal }, retrying(run))).json();
    const cancel = () => { api(job.status_url, { method: "DELETE" }).catch(() => {}); };
    run.signal.addEventListener("abort", cancel);
    try {
      while (job.state === "queued" || job.state === "running") {
        progress.label = job.state === "queued"
          ? `Queued behind ${job.queue_position} job(s)…`
          : `Optimising: iteration ${job.step} of ${job.steps}…`;
        tickProgress();
        await sleep(1000, run.signal);
        job = await (await api(job.status_url, { signal: run.signal })).json();
      }
      return await api(job.result_url, { signal: run.signal });
    } finally {
      run.signal.removeEventListener("abort", cancel);
    }
  }

  async function addHistory(blob, contentBlob, text, filename) {
    const resultUrl = URL.createObjectURL(blob);
    const probe = new Image();
    await new Promise((resolve, reject) => {
      probe.onload = resolve;
      probe.onerror = () => reject(new Error("The result could not be shown."));
      probe.src = resultUrl;
    });
    const entry = {
      resultUrl, contentUrl: URL.createObjectURL(contentBlob), caption: text, filename,
      width: probe.naturalWidth, height: probe.naturalHeight,
    };
    state.history.unshift(entry);
    for (const old of state.history.splice(MAX_HISTORY)) {
      URL.revokeObjectURL(old.resultUrl);
      URL.revokeObjectURL(old.contentUrl);
    }
    renderHistory();
    return entry;
  }

  function renderHistory() {
    $("history-empty").hidden = state.history.length > 0;
    $("history").replaceChildren(...state.history.map((entry) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "history-item";
      button.setAttribute("aria-label", `show ${entry.caption}`);
      button.setAttribute("aria-pressed", String(entry === state.current));
      const img = document.createElement("img");
      img.src = entry.resultUrl;
      img.alt = entry.caption;
      button.append(img);
      button.addEventListener("click", () => showEntry(entry));
      return button;
    }));
  }

  // show a result over its own original, with the comparison slider and the download link
  function showEntry(entry) {
    state.current = entry;
    const content = $("content-preview"), result = $("result");
    content.onload = null;  // the entry knows its size
    content.src = entry.contentUrl;
    content.hidden = false;
    $("compare").style.aspectRatio = `${entry.width} / ${entry.height}`;
    result.src = entry.resultUrl;
    result.hidden = false;
    $("empty-hint").hidden = true;
    $("compare-row").hidden = false;
    $("compare-slider").value = "100";
    applyCompare();
    $("result-caption").textContent = entry.caption;
    $("result-size").textContent = `${entry.width}×${entry.height}`;
    $("content-size").textContent = "";
    const link = $("download");
    link.href = entry.resultUrl;
    link.download = entry.filename;
    link.hidden = false;
    renderHistory();
  }

  function applyCompare() {
    const shown = Number($("compare-slider").value);
    $("result").style.clipPath = `inset(0 ${100 - shown}% 0 0)`;
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

  // RGBA pixels -> class indices by the nearest palette colour
  function labelsFromPixels(data, palette) {
    const labels = new Uint8Array(data.length / 4);
    for (let i = 0; i < labels.length; i++) {
      let best = 0, bestD = Infinity;
      for (let k = 0; k < palette.length; k++) {
        const d = (data[4 * i] - palette[k][0]) ** 2 + (data[4 * i + 1] - palette[k][1]) ** 2
          + (data[4 * i + 2] - palette[k][2]) ** 2;
        if (d < bestD) { bestD = d; best = k; }
      }
      labels[i] = best;
    }
    return labels;
  }

  window.stylenormPaint = { paintDisc, floodFill, labelsFromPixels };

  async function setupSynthesize(model) {
    const [h, w] = model.size || [64, 64];
    const classes = model.classes || [];
    const palette = model.palette || classes.map((_, i) => [(i * 67) % 256, (i * 131) % 256, (i * 199) % 256]);
    const canvas = $("label-canvas");
    canvas.width = w;
    canvas.height = h;
    $("canvas-size").textContent = `${w}×${h}`;
    state.paint = {
      w, h, labels: new Uint8Array(w * h), palette, current: classes.length > 1 ? 1 : 0,
      drawing: false, undo: [],
    };
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
    $("example-button").hidden = !model.example;
    $("undo-button").disabled = true;
    $("synth-result").hidden = true;
    $("synth-download").hidden = true;
    $("synth-seed").textContent = "";
    if (model.example) await loadExample(false);  // start from the example: a scene in one click
    renderLabels();
  }

  async function loadExample(undoable = true) {
    const p = state.paint;
    const blob = await (await api(state.model.example)).blob();
    const bitmap = await createImageBitmap(blob);
    const scratch = document.createElement("canvas");
    scratch.width = p.w;
    scratch.height = p.h;
    const ctx = scratch.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, 0, 0, p.w, p.h);
    if (undoable) pushUndo();
    p.labels = labelsFromPixels(ctx.getImageData(0, 0, p.w, p.h).data, p.palette);
    renderLabels();
  }

  function pushUndo() {
    const p = state.paint;
    p.undo.push(p.labels.slice());
    if (p.undo.length > MAX_UNDO) p.undo.shift();
    $("undo-button").disabled = false;
  }

  function undo() {
    const p = state.paint;
    if (!p || !p.undo.length) return;
    p.labels = p.undo.pop();
    $("undo-button").disabled = p.undo.length === 0;
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
      pushUndo();  // one undo step per stroke or fill
      state.paint.drawing = tool() !== "fill";
      paintAt(e, false);
    });
    canvas.addEventListener("pointermove", (e) => { if (state.paint && state.paint.drawing) paintAt(e, true); });
    const stop = () => { if (state.paint) { state.paint.drawing = false; state.paint.last = null; } };
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    $("brush-size").addEventListener("input", () => { $("brush-value").textContent = $("brush-size").value; });
    $("clear-canvas").addEventListener("click", () => { pushUndo(); state.paint.labels.fill(0); renderLabels(); });
    $("undo-button").addEventListener("click", undo);
    $("example-button").addEventListener("click", () => loadExample().catch(showError));
    document.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "z" && !$("synthesize-panel").hidden) { e.preventDefault(); undo(); }
    });
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
    const run = new AbortController();
    const response = await api("/v1/synthesize", { method: "POST", body: form }, retrying(run, setStatus));
    const img = $("synth-result");
    img.src = swapUrl("synth", await response.blob());
    img.hidden = false;
    const used = response.headers.get("X-Seed") || "?";
    $("synth-seed").textContent = `seed ${used}`;
    const link = $("synth-download");
    link.href = img.src;
    link.download = `${state.model.name}-seed${used}.png`;
    link.hidden = false;
    setStatus("Done.");
  }

  // ----------------------------------------------------------------------------- cgan

  function setupGenerate(model) {
    const classes = model.classes || [];
    $("gen-class").replaceChildren(...classes.map((name) => {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      return option;
    }));
    // few classes: one button each (a click picks the class and generates); many: the list
    const buttons = classes.length <= 20;
    $("gen-class").closest("label").hidden = buttons;
    $("gen-class-buttons").replaceChildren(...(buttons ? classes : []).map((name) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "class-button";
      b.setAttribute("role", "radio");
      b.dataset.class = name;
      b.textContent = name;
      b.setAttribute("aria-label", `generate class ${name}`);
      b.addEventListener("click", () => {
        $("gen-class").value = name;
        markGenClass();
        busy($("generate-button"), runGenerate);
      });
      return b;
    }));
    markGenClass();
    $("gen-results").replaceChildren();
  }

  function markGenClass() {
    for (const b of $("gen-class-buttons").children) {
      b.setAttribute("aria-checked", String(b.dataset.class === $("gen-class").value));
    }
  }

  async function runGenerate() {
    const body = { model: state.model.name, class_name: $("gen-class").value, count: Number($("gen-count").value) };
    const seed = $("gen-seed").value.trim();
    if (seed) body.seed = Number(seed);
    setStatus("Generating…");
    const response = await api("/v1/generate", {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    }, retrying(new AbortController(), setStatus));
    const result = await response.json();
    $("gen-results").replaceChildren(...result.images.map((b64, i) => {
      const img = document.createElement("img");
      img.src = `data:${result.media_type};base64,${b64}`;
      img.alt = `generated ${result.class_name}, ${i + 1} of ${result.images.length} (seed ${result.seed})`;
      return img;
    }));
    setStatus(`${result.images.length} × ${result.class_name} (seed ${result.seed}: enter it to get the same again).`);
  }

  // ----------------------------------------------------------------------------- wiring

  async function busy(button, work) {
    button.disabled = true;
    showError(null);
    try { await work(); } catch (err) { showError(err); } finally { button.disabled = false; }
  }

  function firstImage(items) {
    for (const item of items || []) {
      const file = item.getAsFile ? (item.kind === "file" ? item.getAsFile() : null) : item;
      if (file && /^image\//.test(file.type)) return file;
    }
    return null;
  }

  function wireDrops() {
    // a file dropped anywhere must not replace the page
    for (const type of ["dragover", "drop"]) document.addEventListener(type, (e) => e.preventDefault());
    const targets = [
      [$("content-box"), (files) => setContent(firstImage(files))],
      [$("compare"), (files) => setContent(firstImage(files))],
      [$("style-box"), (files) => addUploadedStyles(files)],
    ];
    for (const [target, take] of targets) {
      target.addEventListener("dragover", (e) => { e.preventDefault(); target.classList.add("dragging"); });
      target.addEventListener("dragleave", () => target.classList.remove("dragging"));
      target.addEventListener("drop", (e) => {
        e.preventDefault();
        e.stopPropagation();
        target.classList.remove("dragging");
        if (e.dataTransfer && e.dataTransfer.files.length) take(e.dataTransfer.files);
      });
    }
    // a pasted image becomes the photo
    document.addEventListener("paste", (e) => {
      if ($("stylize-panel").hidden || !e.clipboardData) return;
      const file = firstImage(e.clipboardData.items) || firstImage(e.clipboardData.files);
      if (file) {
        e.preventDefault();
        setContent(file.name ? file : new File([file], "pasted.png", { type: file.type }));
      }
    });
  }

  function wire() {
    $("model-select").addEventListener("change", (e) => selectModel(e.target.value).catch(showError));
    for (const tab of document.querySelectorAll("#tasks [role=tab]")) {
      tab.addEventListener("click", () => setTask(tab.dataset.task).catch(showError));
    }
    for (const id of ["content-input", "camera-input"]) {
      $(id).addEventListener("change", (e) => { setContent(e.target.files[0] || null); e.target.value = ""; });
    }
    $("style-input").addEventListener("change", (e) => { addUploadedStyles(e.target.files); e.target.value = ""; });
    $("alpha").addEventListener("input", () => { $("alpha-value").textContent = Number($("alpha").value).toFixed(2); });
    $("compare-slider").addEventListener("input", applyCompare);
    $("cancel-button").addEventListener("click", () => { if (state.run) state.run.abort(); });
    $("stylize-button").addEventListener("click", () => runStylize().catch(showError));
    $("synthesize-button").addEventListener("click", (e) => busy(e.currentTarget, runSynthesize));
    $("generate-button").addEventListener("click", (e) => busy(e.currentTarget, runGenerate));
    $("gen-class").addEventListener("change", markGenClass);
    $("auth-box").addEventListener("submit", (e) => {
      e.preventDefault();
      state.apiKey = $("api-key").value;
      sessionStorage.setItem("stylenorm-api-key", state.apiKey);
      $("auth-box").hidden = true;
      start();
    });
    wireCanvas();
    wireDrops();
  }

  function start() {
    showError(null);
    loadModels().catch((err) => { setStatus(""); showError(err); });
  }

  wire();
  loadSamples();
  start();
})();
