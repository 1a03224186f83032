// Dream Depot web UI: plain JavaScript, no build step.
// Every piece of catalog text (prompts, tags, parameters) is untrusted: it is only ever
// written with textContent / attributes, never parsed as HTML.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
};

// who is signed in (a shared instance); its CSRF token goes with every change
const ME = { accounts: false, csrf_token: null, id: null, role: "admin" };

async function api(path, opts = {}) {
  const init = { credentials: "same-origin", ...opts };
  init.headers = { ...(opts.headers || {}) };
  if (opts.json !== undefined) {
    init.method = opts.method || "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.json);
  }
  if (opts.form !== undefined) {
    init.method = "POST";
    init.body = opts.form;
  }
  if (ME.csrf_token && init.method && init.method !== "GET") init.headers["X-CSRF-Token"] = ME.csrf_token;
  const r = await fetch(path, init);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error(body.error || r.statusText);
    err.status = r.status;
    err.body = body;
    throw err;
  }
  return body;
}

const SAFE_DATA_URI = /^data:image\/(webp|avif|png|svg\+xml);base64,[A-Za-z0-9+/=]+$/;
const SAFE_URL = /^\/(api|files)\/[A-Za-z0-9_\-./%]+$/;
const safeUrl = (u) => (typeof u === "string" && SAFE_URL.test(u) ? u : "");

function toast(message, ms = 2500, onClick = null) {
  const t = $("#toast");
  t.textContent = message;
  t.hidden = false;
  t.onclick = onClick;
  t.style.cursor = onClick ? "pointer" : "default";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), ms);
}

// split a query into terms, keeping quoted values whole: tag:"red fox" -tag:x → 2 terms
function terms(q) {
  return q.match(/(?:[^\s"]+|"(?:[^"\\]|\\.)*")+/g) || [];
}

function quoteValue(v) {
  return /[\s"()]/.test(v) ? `"${v.replace(/"/g, '\\"')}"` : v;
}

// ---------------------------------------------------------------------------------------
// state
const S = {
  q: "",
  items: [],
  index: new Map(), // id -> position in items
  cursor: null,
  done: false,
  loading: false,
  generation: 0,
  selected: new Set(),
  allInQuery: false,
  anchor: -1,
  focus: -1,
  tile: Number(localStorage.getItem("dd.tile") || 192),
  gap: 6,
  cols: 1,
  rowH: 198,
  rendered: new Map(), // position -> element
  lastOp: null,
  detailId: null,
};

const grid = $("#grid");
const scroller = $("#grid-scroll");
const sizer = $("#grid-sizer");

// ---------------------------------------------------------------------------------------
// grid: windowed — only the visible rows plus a margin exist in the DOM
function layout() {
  const width = scroller.clientWidth - 8;
  S.cols = Math.max(1, Math.floor((width + S.gap) / (S.tile + S.gap)));
  S.rowH = S.tile + S.gap;
  document.documentElement.style.setProperty("--tile", `${S.tile}px`);
  sizer.style.height = `${Math.ceil(S.items.length / S.cols) * S.rowH}px`;
  for (const [pos, node] of S.rendered) place(node, pos);
  render();
}

function place(node, pos) {
  const row = Math.floor(pos / S.cols);
  const col = pos % S.cols;
  node.style.transform = `translate(${4 + col * (S.tile + S.gap)}px, ${row * S.rowH}px)`;
}

function makeTile(item, pos) {
  const node = el("div", { class: "tile", dataset: { pos: String(pos), id: String(item.id) } });
  if (SAFE_DATA_URI.test(item.placeholder || "")) {
    node.style.backgroundImage = `url("${item.placeholder}")`;
  }
  node.title = item.prompt || "(no prompt)";
  const img = el("img", { alt: "", decoding: "async", loading: "eager", draggable: "false" });
  img.addEventListener("load", () => img.classList.add("loaded"));
  img.src = safeUrl(item.thumbnail_url);
  node.append(img);
  dragOut(node, item);
  if (item.favorite) node.append(el("span", { class: "fav", text: "★" }));
  if (item.rating) node.append(el("span", { class: "badge", text: "★".repeat(item.rating) }));
  if (item.marked) node.classList.add("marked");
  if (item.media && item.media !== "image") {
    node.append(el("span", { class: "duration", text: clock(item.duration) }));
    if (item.clip_url) hoverClip(node, item);
  }
  syncTileState(node, pos);
  place(node, pos);
  return node;
}

// "0:07" for 7.2 s, "1:02:05" past an hour; sub-second clips show "0:01"
function clock(seconds) {
  const t = Math.max(1, Math.round(seconds || 0));
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = String(t % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

// videos and animations play their short muted preview while the pointer rests on them
function hoverClip(node, item) {
  let timer = 0;
  node.addEventListener("pointerenter", () => {
    timer = setTimeout(() => {
      if (node.querySelector("video.clip")) return;
      const v = el("video", { class: "clip", muted: "", loop: "", playsinline: "", preload: "auto" });
      v.muted = true;
      v.src = safeUrl(item.clip_url);
      node.append(v);
      v.play().catch(() => {});
    }, 120);
  });
  node.addEventListener("pointerleave", () => {
    clearTimeout(timer);
    node.querySelector("video.clip")?.remove();
  });
}

function syncTileState(node, pos) {
  const item = S.items[pos];
  node.classList.toggle("selected", S.allInQuery || S.selected.has(item.id));
  node.classList.toggle("focused", pos === S.focus);
}

function render() {
  const margin = 2;
  const top = scroller.scrollTop;
  const first = Math.max(0, (Math.floor(top / S.rowH) - margin) * S.cols);
  const last = Math.min(S.items.length,
    (Math.ceil((top + scroller.clientHeight) / S.rowH) + margin) * S.cols);
  for (const [pos, node] of S.rendered) {
    if (pos < first || pos >= last) {
      node.remove();
      S.rendered.delete(pos);
    }
  }
  const frag = document.createDocumentFragment();
  for (let pos = first; pos < last; pos++) {
    if (!S.rendered.has(pos)) {
      const node = makeTile(S.items[pos], pos);
      S.rendered.set(pos, node);
      frag.append(node);
    }
  }
  grid.append(frag);
  if (!S.done && !S.loading && top + scroller.clientHeight * 3 > sizer.offsetHeight) loadMore();
}

function refreshTiles() {
  for (const [pos, node] of S.rendered) syncTileState(node, pos);
  const bar = $("#selection-bar");
  const n = S.allInQuery ? `all ${S.total ?? ""} in query` : S.selected.size;
  bar.hidden = !S.allInQuery && S.selected.size === 0;
  $("#selection-count").textContent = `${n} selected`;
}

async function loadMore() {
  if (S.loading || S.done) return;
  S.loading = true;
  const gen = S.generation;
  $("#grid-end").textContent = "Loading…";
  try {
    // a small first page paints sooner; later pages are bigger
    const params = new URLSearchParams({ q: S.q, limit: S.items.length ? "400" : "120" });
    if (S.cursor) params.set("cursor", S.cursor);
    const page = await api(`/api/images?${params}`);
    if (gen !== S.generation) return;
    for (const item of page.items) {
      S.index.set(item.id, S.items.length);
      S.items.push(item);
    }
    S.cursor = page.next_cursor;
    S.done = !page.next_cursor;
    $("#search").classList.remove("error");
    $("#grid-end").textContent = S.done ? (S.items.length ? "" : "No images match.") : "";
  } catch (err) {
    if (gen === S.generation) {
      S.done = true;
      $("#search").classList.add("error");
      $("#grid-end").textContent = err.message;
    }
  } finally {
    if (gen === S.generation) {
      S.loading = false;
      layout();
    }
  }
}

function resetGrid() {
  S.generation++;
  S.items = [];
  S.index = new Map();
  S.cursor = null;
  S.done = false;
  S.loading = false;
  S.focus = -1;
  S.anchor = -1;
  S.allInQuery = false;
  S.selected.clear();
  for (const node of S.rendered.values()) node.remove();
  S.rendered.clear();
  scroller.scrollTop = 0;
  refreshTiles();
  const gen = S.generation;
  // the first page first; the count and the tag sidebar follow once tiles are painting
  loadMore().then(() => {
    if (gen !== S.generation) return;
    api(`/api/images/count?q=${encodeURIComponent(S.q)}`)
      .then((r) => { S.total = r.count; $("#status").textContent = `${r.count.toLocaleString()} images`; })
      .catch(() => {});
    loadTags();
    loadFolders();
  });
}

function setQuery(q, push = true) {
  S.q = q.trim();
  $("#search").value = S.q;
  if (push) {
    const hash = S.q ? `#/?q=${encodeURIComponent(S.q)}` : "#/";
    if (location.hash !== hash) history.pushState(null, "", hash);
    routedHash = location.hash || "#/";
  }
  showView("grid");
  resetGrid();
}

// ---------------------------------------------------------------------------------------
// folder tree: registered folders and subfolders with counts kept by the catalog; a click
// filters the grid by that folder (one folder: term in the query, so it is in the URL)
const openFolders = new Set();

function folderTerm(q) {
  return terms(q).find((t) => /^folder:/.test(t)) || null;
}

function setFolder(path) {
  const term = `folder:${quoteValue(path)}`;
  const current = folderTerm(S.q);
  const rest = terms(S.q).filter((t) => t !== current);
  setQuery((current === term ? rest : [...rest, term]).join(" "));
}

async function loadFolders() {
  const list = $("#folders");
  try {
    const roots = await api("/api/folders");
    const active = folderTerm(S.q);
    const render = (node, depth) => {
      const term = `folder:${quoteValue(node.path)}`;
      const hasKids = node.children.length > 0;
      const open = openFolders.has(node.path);
      const toggle = el("span", { class: "twisty", text: hasKids ? (open ? "▾" : "▸") : "·" });
      const li = el("li", { dataset: { path: node.path } },
        toggle,
        el("span", { class: "name", text: node.name + (node.online ? "" : " (offline)") }),
        el("span", { class: "n", text: node.count.toLocaleString() }));
      li.style.paddingLeft = `${4 + depth * 12}px`;  // CSSOM: allowed under the CSP
      if (active === term) li.classList.add("included");
      if (!node.online) li.classList.add("offline");
      toggle.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (open) openFolders.delete(node.path); else openFolders.add(node.path);
        loadFolders();
      });
      li.addEventListener("click", () => setFolder(node.path));
      const out = [li];
      if (open) for (const c of node.children) out.push(...render(c, depth + 1));
      return out;
    };
    list.replaceChildren(...roots.flatMap((r) => render(r, 0)));
  } catch { /* the grid shows errors */ }
}

// ---------------------------------------------------------------------------------------
// tag sidebar: counts for the current query; click includes, alt-click excludes
async function loadTags() {
  const list = $("#tags");
  try {
    const { tags } = await api(`/api/tags?limit=150&q=${encodeURIComponent(S.q)}`);
    list.replaceChildren(...tags.map((t) => {
      const term = `tag:${quoteValue(t.name)}`;
      const li = el("li", { dataset: { tag: t.name } },
        el("span", { text: t.name, class: t.kind === "auto" ? "kind-auto" : "" }),
        el("span", { class: "n", text: t.count.toLocaleString() }));
      if (terms(S.q).includes(term)) li.classList.add("included");
      if (terms(S.q).includes(`-${term}`)) li.classList.add("excluded");
      li.addEventListener("click", (ev) => toggleTagTerm(t.name, ev.altKey));
      return li;
    }));
  } catch { /* the grid shows query errors */ }
}

function toggleTagTerm(name, exclude) {
  const term = `tag:${quoteValue(name)}`;
  const parts = terms(S.q);
  const want = exclude ? `-${term}` : term;
  const other = exclude ? term : `-${term}`;
  let next = parts.filter((p) => p !== other);
  next = next.includes(want) ? next.filter((p) => p !== want) : [...next, want];
  setQuery(next.join(" "));
}

// ---------------------------------------------------------------------------------------
// selection and keyboard
function selectPos(pos, ev) {
  const item = S.items[pos];
  if (!item) return;
  S.allInQuery = false;
  if (ev && ev.shiftKey && S.anchor >= 0) {
    const [a, b] = [Math.min(S.anchor, pos), Math.max(S.anchor, pos)];
    if (!(ev.ctrlKey || ev.metaKey)) S.selected.clear();
    for (let i = a; i <= b; i++) S.selected.add(S.items[i].id);
  } else if (ev && (ev.ctrlKey || ev.metaKey)) {
    if (S.selected.has(item.id)) S.selected.delete(item.id);
    else S.selected.add(item.id);
    S.anchor = pos;
  } else {
    S.selected.clear();
    S.selected.add(item.id);
    S.anchor = pos;
  }
  S.focus = pos;
  refreshTiles();
}

function targetIds() {
  if (S.selected.size) return [...S.selected];
  if (S.focus >= 0 && S.items[S.focus]) return [S.items[S.focus].id];
  return [];
}

function moveFocus(delta, ev) {
  if (!S.items.length) return;
  const pos = Math.max(0, Math.min(S.items.length - 1, (S.focus < 0 ? 0 : S.focus + delta)));
  if (ev.shiftKey) selectPos(pos, { shiftKey: true });
  else { S.focus = pos; refreshTiles(); }
  const row = Math.floor(pos / S.cols);
  const y = row * S.rowH;
  if (y < scroller.scrollTop) scroller.scrollTop = y;
  else if (y + S.rowH > scroller.scrollTop + scroller.clientHeight) {
    scroller.scrollTop = y + S.rowH - scroller.clientHeight;
  }
}

async function changeTags(tags, remove) {
  const body = S.allInQuery ? { tags, q: S.q, remove } : { tags, ids: targetIds(), remove };
  if (!body.q && !body.ids.length) return;
  const r = await api("/api/tags", { json: body });
  S.lastOp = { kind: "tags", tags, remove, changed: r.changed_ids };
  $("#undo").disabled = false;
  toast(`${remove ? "Removed" : "Added"} ${tags.join(", ")} on ${r.changed.toLocaleString()} image(s)`);
  loadTags();
  return r;
}

async function rate(value) {
  const ids = S.allInQuery ? null : targetIds();
  if (!ids || !ids.length) return;
  const prev = ids.map((id) => [id, S.items[S.index.get(id)]?.rating ?? null]);
  await api("/api/ratings", { json: { ids, rating: value } });
  for (const id of ids) {
    const item = S.items[S.index.get(id)];
    if (item) item.rating = value;
  }
  S.lastOp = { kind: "rating", prev };
  $("#undo").disabled = false;
  redrawTiles(ids);
  toast(`Rated ${ids.length} image(s) ${value ? "★".repeat(value) : "(cleared)"}`);
}

async function toggleFavorite() {
  const ids = targetIds();
  if (!ids.length) return;
  const first = S.items[S.index.get(ids[0])];
  const value = !(first && first.favorite);
  for (const id of ids) {
    await api(`/api/images/${id}/favorite`, { json: { favorite: value }, method: "PUT" });
    const item = S.items[S.index.get(id)];
    if (item) item.favorite = value;
  }
  redrawTiles(ids);
}

async function markForDeletion() {
  const ids = targetIds();
  if (!ids.length) return;
  await changeTags(["marked-for-deletion"], false);
  for (const id of ids) {
    const item = S.items[S.index.get(id)];
    if (item) item.marked = true;
  }
  redrawTiles(ids);
  toast(`Marked ${ids.length} image(s) for deletion (tag marked-for-deletion); nothing is deleted`);
}

async function undo() {
  const op = S.lastOp;
  if (!op) return;
  S.lastOp = null;
  $("#undo").disabled = true;
  if (op.kind === "tags") {
    for (const [tag, ids] of Object.entries(op.changed || {})) {
      if (ids.length) await api("/api/tags", { json: { tags: [tag], ids, remove: !op.remove } });
    }
    toast("Undone");
    loadTags();
  } else if (op.kind === "rating") {
    const groups = new Map();
    for (const [id, r] of op.prev) groups.set(r, [...(groups.get(r) || []), id]);
    for (const [r, ids] of groups) await api("/api/ratings", { json: { ids, rating: r } });
    for (const [id, r] of op.prev) {
      const item = S.items[S.index.get(id)];
      if (item) item.rating = r;
    }
    redrawTiles(op.prev.map(([id]) => id));
    toast("Undone");
  }
}

function redrawTiles(ids) {
  for (const id of ids) {
    const pos = S.index.get(id);
    const node = S.rendered.get(pos);
    if (node) {
      const fresh = makeTile(S.items[pos], pos);
      node.replaceWith(fresh);
      S.rendered.set(pos, fresh);
    }
  }
}

function selectBatch() {
  const pos = S.focus >= 0 ? S.focus : S.index.get([...S.selected][0]);
  const item = S.items[pos];
  if (!item) return;
  S.selected.clear();
  for (const other of S.items) {
    const sameJob = item.job_id && other.job_id === item.job_id;
    const samePrompt = item.prompt_id && other.prompt_id === item.prompt_id &&
      Math.abs(other.created_at - item.created_at) <= 600;
    if (sameJob || samePrompt || other.id === item.id) S.selected.add(other.id);
  }
  refreshTiles();
  toast(`Selected ${S.selected.size} image(s) from this batch (same prompt within 10 minutes)`);
}

// ---------------------------------------------------------------------------------------
// tag dialog with autocomplete
async function openTagDialog(remove = false) {
  if (!S.allInQuery && !targetIds().length) return;
  const dialog = $("#tag-dialog");
  $("#tag-dialog-title").textContent = remove === "reject" ? "Reject auto tags"
    : remove === "accept" ? "Accept auto tags" : remove ? "Remove tags" : "Add tags";
  const input = $("#tag-input");
  input.value = "";
  $("#tag-suggest").replaceChildren();
  dialog.returnValue = "";
  dialog.showModal();
  input.focus();
  dialog.onclose = async () => {
    if (dialog.returnValue !== "ok") return;
    const tags = input.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.length) {
      try {
        if (remove === "reject" || remove === "accept") {
          const body = S.allInQuery ? { tags, q: S.q, action: remove }
            : { tags, ids: targetIds(), action: remove };
          const r = await api("/api/tags/review", { json: body });
          toast(remove === "reject" ? `Rejected on ${r.changed} image(s); never proposed again`
            : `Accepted on ${r.changed} image(s)`);
          loadTags();
        } else await changeTags(tags, remove);
      } catch (err) { toast(err.message); }
    }
    scroller.focus();
  };
}

$("#tag-input").addEventListener("input", async (ev) => {
  const parts = ev.target.value.split(",");
  const prefix = parts[parts.length - 1].trim();
  const box = $("#tag-suggest");
  if (!prefix) return box.replaceChildren();
  const { tags } = await api(`/api/tags/suggest?prefix=${encodeURIComponent(prefix)}`);
  box.replaceChildren(...tags.slice(0, 8).map((t) => el("div", {
    text: `${t.name} (${t.count})`,
    onclick: () => {
      parts[parts.length - 1] = ` ${t.name}`;
      ev.target.value = parts.join(",").replace(/^ /, "") + ", ";
      box.replaceChildren();
      ev.target.focus();
    },
  })));
});
$("#tag-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter") { ev.preventDefault(); $("#tag-dialog").close("ok"); }
});

// ---------------------------------------------------------------------------------------
// detail view
// a shared instance: whose image this is, and (for its owner) whether everyone sees it
function sharingRow(d) {
  const mine = d.owner_id === ME.id || (d.owner_id == null && ME.role === "admin");
  if (!mine) return el("div", { id: "owner", text: `Shared by ${d.owner || "the library"}` });
  const box = el("input", { type: "checkbox", id: "shared-toggle" });
  box.checked = !!d.shared;
  box.addEventListener("change", async () => {
    try {
      await api(`/api/images/${d.id}/sharing`, { json: { shared: box.checked }, method: "PUT" });
      toast(box.checked ? "Shared with everyone on this instance" : "Private: only you see it");
    } catch (err) { box.checked = !box.checked; toast(err.message); }
  });
  return el("label", { class: "row" }, box, el("span", { text: " Shared with everyone" }));
}

async function openDetail(id) {
  S.detailId = id;
  const d = await api(`/api/images/${id}`);
  const overlay = $("#detail");
  overlay.hidden = false;
  const img = $("#detail-img");
  const video = $("#detail-video");
  const isVideo = d.media === "video";
  img.hidden = isVideo;
  video.hidden = !isVideo;
  if (isVideo) {
    video.poster = safeUrl(d.preview_url);
    video.src = safeUrl(d.file_url);
  } else {
    video.removeAttribute("src");
    if (SAFE_DATA_URI.test(d.placeholder || "")) img.style.background = `url("${d.placeholder}") center/contain no-repeat`;
    // an animation plays as itself; a still shows its 1024 px preview first
    img.src = safeUrl(d.media === "animation" ? d.file_url : d.preview_url);
    img.onerror = () => { if (img.src !== location.origin + safeUrl(d.file_url)) img.src = safeUrl(d.file_url); };
  }
  const info = $("#detail-info");
  const copy = (label, text) => el("button", {
    text: label, disabled: text ? null : "",
    onclick: () => copyText(text).then(() => toast(`${label}: copied`)),
  });
  const infotext = await api(`/api/images/${id}/infotext`).then((r) => r.infotext).catch(() => "");
  const params = [
    ["Generator", [d.generator, d.generator_version].filter(Boolean).join(" ")],
    ["Model", d.model], ["Model file", d.model_raw && d.model_raw !== d.model ? d.model_raw : null],
    ["Model hash", d.model_hash], ["VAE", d.vae],
    ["Sampler", d.sampler], ["Scheduler", d.scheduler], ["Steps", d.steps],
    ["CFG scale", d.cfg_scale], ["Seed", d.seed ?? d.params?.seed], ["Size", `${d.width}×${d.height}`],
    ["Denoise", d.denoise], ["Clip skip", d.clip_skip], ["Format", d.format],
    ["Duration", d.duration != null ? `${d.duration} s` : null], ["Frames", d.frame_count],
    ["Frame rate", d.fps != null ? `${d.fps} fps` : null],
    ["LoRAs", (d.loras || []).map((l) => `${l.name}${l.weight != null ? `:${l.weight}` : ""}`).join(", ")],
  ];
  for (const [k, v] of Object.entries(d.params || {})) {
    if (k !== "seed") params.push([k, typeof v === "string" ? v : JSON.stringify(v)]);
  }
  const table = el("table", {}, ...params.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: String(v) }))));
  const stars = el("span", { class: "stars" }, ...[1, 2, 3, 4, 5].map((n) => el("button", {
    text: "★", class: (d.rating || 0) >= n ? "on" : "", title: `Rate ${n}`,
    onclick: async () => {
      await api(`/api/images/${id}/rating`, { json: { rating: d.rating === n ? null : n }, method: "PUT" });
      openDetail(id);
    },
  })));
  const fav = el("button", {
    text: d.favorite ? "★ Favourite" : "☆ Favourite",
    onclick: async () => {
      await api(`/api/images/${id}/favorite`, { json: { favorite: !d.favorite }, method: "PUT" });
      openDetail(id);
    },
  });
  const review = (t, action) => async () => {
    await api("/api/tags/review", { json: { tags: [t.name], ids: [id], action } });
    openDetail(id);
  };
  const tagRow = el("div", { class: "row" }, ...d.tags.map((t) => el("span", {
    class: `chip ${t.source !== "user" ? "auto" : ""}`,
    title: t.source === "user" ? "your tag" : `auto: ${t.tagger || t.source}` +
      (t.confidence != null ? ` (${Math.round(t.confidence * 100)}%)` : "") },
  el("span", { text: t.name }),
  t.source === "auto" ? el("button", { text: "✓", title: "Accept", onclick: review(t, "accept") }) : null,
  t.source === "auto"
    ? el("button", { text: "×", title: "Reject (never proposed again)", onclick: review(t, "reject") })
    : el("button", { text: "×", title: "Remove tag", onclick: async () => {
      await api("/api/tags", { json: { tags: [t.name], ids: [id], remove: true } });
      openDetail(id);
    } }))));
  const addTag = el("input", { placeholder: "add tag…", class: "add-tag" });
  addTag.addEventListener("keydown", async (ev) => {
    if (ev.key === "Enter" && addTag.value.trim()) {
      await api("/api/tags", { json: { tags: [addTag.value.trim()], ids: [id] } });
      openDetail(id);
    }
    ev.stopPropagation();
  });
  const backend = await api("/api/backend").catch(() => ({ available: false, reason: "unknown" }));
  const submit = (body) => async () => {
    try {
      const r = await api("/api/generate", { json: body });
      toast(`Job ${r.job} queued — the result appears in the grid when done`);
    } catch (err) { toast(err.message); }
  };
  const sizeOf = (v) => Math.max(64, Math.min(2048, Math.round((v || 512) / 8) * 8));
  const actions = [
    ["Generate more", { kind: "txt2img", prompt: d.prompt || "", negative_prompt: d.negative_prompt || "",
      n: 2, steps: d.steps || 20, cfg_scale: d.cfg_scale || 7, width: sizeOf(d.width), height: sizeOf(d.height),
      model: d.model || null }],
    ["Variations", { kind: "img2img", parent_id: id, prompt: d.prompt || "", n: 2, denoise: 0.5,
      width: sizeOf(d.width), height: sizeOf(d.height) }],
    ["Upscale", { kind: "upscale", parent_id: id, prompt: d.prompt || "", scale: 2,
      width: sizeOf(d.width), height: sizeOf(d.height) }],
  ];
  const genButtons = el("div", { class: "row" }, ...actions.map(([label, body]) =>
    el("button", backend.available ? { text: label, onclick: submit(body) }
      : { text: label, disabled: "", title: backend.reason || "No generation back end" })));
  const similar = el("div", { class: "strip" });
  api(`/api/images/${id}/similar?limit=12`).then((r) => similar.replaceChildren(
    ...r.items.map((it) => thumb(it, () => openDetail(it.id))))).catch(() => {});
  const lineage = el("div", { class: "row" });
  if (d.parent_id) lineage.append(el("button", { text: `Parent #${d.parent_id}`, onclick: () => openDetail(d.parent_id) }));
  for (const c of d.children || []) lineage.append(el("button", { text: `Child #${c}`, onclick: () => openDetail(c) }));
  info.replaceChildren(
    el("div", { class: "row" }, stars, fav, el("span", { text: `#${d.id}` }),
      el("button", { id: "detail-fullscreen", text: "Full screen (V)", onclick: () => {
        const pos = S.index.get(id);
        closeDetail();
        if (pos != null) openViewer(pos);
      } })),
    el("h4", { text: "Prompt" }), el("div", { class: "prompt", id: "detail-prompt", text: d.prompt || "(none)" }),
    el("h4", { text: "Negative prompt" }), el("div", { class: "prompt", text: d.negative_prompt || "(none)" }),
    el("div", { class: "row" }, copy("Copy prompt", d.prompt), copy("Copy negative", d.negative_prompt),
      copy("Copy A1111 infotext", infotext), copy("Copy seed", d.seed != null ? String(d.seed) : ""),
      el("button", {
        id: "copy-workflow", text: "Copy ComfyUI workflow",
        disabled: (d.source || []).some((s) => /workflow|exif/.test(s)) ? null : "",
        onclick: () => api(`/api/images/${id}/workflow`)
          .then((r) => copyText(r.workflow)).then(() => toast("ComfyUI workflow: copied"))
          .catch((e) => toast(e.message)),
      })),
    el("h4", { text: "Parameters" }), table,
    el("h4", { text: "Tags" }), tagRow, addTag,
    el("div", { class: "taggers meta", id: "detail-taggers" }, ...((d.taggers || []).length
      ? d.taggers.map((t) => el("div", { text: `tagger ${t.name} v${t.version}: ${t.error ? `failed — ${t.error}` : t.note || "ran"}` }))
      : [el("div", { text: "no automatic tagger has run on this image yet" })])),
    el("h4", { text: "Albums" }), el("div", { class: "row", text: (d.albums || []).join(", ") || "—" }),
    el("h4", { text: "Generate" }), genButtons,
    el("h4", { text: "Looks similar" }), similar,
    el("h4", { text: "Lineage" }), lineage.childElementCount ? lineage : el("div", { text: "—" }),
    el("h4", { text: "Files" }), ...d.files.map((f) => el("div", { text: `${f.path} (${f.state})` })),
    ME.accounts ? sharingRow(d) : null,
    d.can_reveal ? el("button", {
      id: "reveal", text: "Reveal in folder",
      onclick: () => api(`/api/images/${id}/reveal`, { json: {} })
        .then(() => toast("Shown in the file manager")).catch((e) => toast(e.message)),
    }) : null,
  );
}

// ---------------------------------------------------------------------------------------
// full-screen viewer: walks the current query's results in order (loading further pages as
// it goes), fit / 100% / wheel zoom with pan, an info overlay, the grid's rating keys
const V = { pos: -1, scale: 1, fit: true, x: 0, y: 0, info: true, preload: new Map() };

function openViewer(pos) {
  if (!S.items[pos]) return;
  $("#viewer").hidden = false;
  $("#viewer").focus();
  showViewerAt(pos);
}

function closeViewer() {
  $("#viewer").hidden = true;
  $("#viewer-video").pause();
  if (V.pos >= 0) { S.focus = V.pos; refreshTiles(); }
  scroller.focus();
}

function fullUrl(item) { return safeUrl(item.file_url); }

function preloadAround(pos) {
  for (const p of [pos + 1, pos + 2, pos - 1]) {
    const item = S.items[p];
    if (item && item.media !== "video" && !V.preload.has(item.id)) {
      const im = new Image();
      im.decoding = "async";
      im.src = fullUrl(item);
      im.decode().catch(() => {});  // decoded ahead too, not only fetched
      V.preload.set(item.id, im);
    }
  }
  if (V.preload.size > 12) V.preload.delete(V.preload.keys().next().value);
  if (pos + 5 >= S.items.length && !S.done) loadMore();
}

function showViewerAt(pos) {
  const item = S.items[pos];
  if (!item) return;
  V.pos = pos;
  S.selected.clear();
  S.focus = pos;
  const img = $("#viewer-img");
  const video = $("#viewer-video");
  V.shownAt = performance.now();
  const isVideo = item.media === "video";
  img.hidden = isVideo;
  video.hidden = !isVideo;
  if (isVideo) {  // plays with its controls; zoom and pan work on it as on an image
    img.removeAttribute("src");
    video.onloadedmetadata = () => { V.loadedAt = performance.now(); fitViewer(); };
    video.src = fullUrl(item);
    video.dataset.id = item.id;
    video.play().catch(() => {});
  } else {
    video.pause();
    video.removeAttribute("src");
    img.onload = () => { V.loadedAt = performance.now(); fitViewer(); };
    img.src = fullUrl(item);
  }
  img.dataset.id = item.id;
  $("#viewer-pos").textContent = `${pos + 1} of ${S.total ?? S.items.length}${item.rating ? " · " + "★".repeat(item.rating) : ""}${item.favorite ? " · ♥" : ""}`;
  renderViewerInfo(item);
  preloadAround(pos);
}

function renderViewerInfo(item) {
  const box = $("#viewer-info");
  box.hidden = !V.info;
  const params = [
    ["model", item.model], ["sampler", item.sampler], ["steps", item.steps], ["cfg", item.cfg_scale],
    ["seed", item.seed], ["size", item.width && item.height ? `${item.width}×${item.height}` : null],
  ].filter(([, v]) => v != null && v !== "");
  box.replaceChildren(
    el("div", { class: "prompt", text: item.prompt || "(no prompt)" }),
    el("div", { class: "meta", text: params.map(([k, v]) => `${k} ${v}`).join(" · ") }));
}

// what the viewer shows now: the image, or the video element for a video
function viewerMedia() {
  const video = $("#viewer-video");
  return video.hidden ? $("#viewer-img") : video;
}

function mediaSize(node) {
  return node.tagName === "VIDEO" ? [node.videoWidth || 1, node.videoHeight || 1]
    : [node.naturalWidth || 1, node.naturalHeight || 1];
}

function applyViewerTransform() {
  viewerMedia().style.transform = `translate(${V.x}px, ${V.y}px) scale(${V.scale})`;
}

function fitViewer() {
  const stage = $("#viewer-stage");
  const [w, h] = mediaSize(viewerMedia());
  V.scale = Math.min(stage.clientWidth / w, stage.clientHeight / h, 1e3);
  V.fitScale = V.scale;
  V.x = (stage.clientWidth - w * V.scale) / 2;
  V.y = (stage.clientHeight - h * V.scale) / 2;
  V.fit = true;
  applyViewerTransform();
}

function zoomViewer(factor, cx, cy) {
  const stage = $("#viewer-stage");
  const px = cx ?? stage.clientWidth / 2, py = cy ?? stage.clientHeight / 2;
  const next = Math.max(0.05, Math.min(Math.max(32, (V.fitScale || 1) * 8), V.scale * factor));
  V.x = px - (px - V.x) * (next / V.scale);
  V.y = py - (py - V.y) * (next / V.scale);
  V.scale = next;
  V.fit = false;
  applyViewerTransform();
}

function actualSize() {
  const [w] = mediaSize(viewerMedia());
  const stage = $("#viewer-stage");
  zoomViewer(1 / V.scale, stage.clientWidth / 2, stage.clientHeight / 2);
  if (w <= stage.clientWidth) V.x = (stage.clientWidth - w) / 2;
  applyViewerTransform();
}

$("#viewer-stage").addEventListener("wheel", (ev) => {
  ev.preventDefault();
  const r = ev.currentTarget.getBoundingClientRect();
  zoomViewer(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX - r.left, ev.clientY - r.top);
}, { passive: false });
$("#viewer-stage").addEventListener("pointerdown", (ev) => {
  const stage = ev.currentTarget;
  const start = { x: ev.clientX, y: ev.clientY, vx: V.x, vy: V.y };
  stage.classList.add("dragging");
  stage.setPointerCapture(ev.pointerId);
  const move = (e) => { V.x = start.vx + e.clientX - start.x; V.y = start.vy + e.clientY - start.y; applyViewerTransform(); };
  const up = (e) => {
    stage.classList.remove("dragging");
    stage.removeEventListener("pointermove", move);
    stage.removeEventListener("pointerup", up);
    const dx = e.clientX - start.x;
    if (V.fit && Math.abs(dx) > 60 && Math.abs(e.clientY - start.y) < 80) {  // a swipe
      V.x = start.vx;
      showViewerAt(Math.max(0, Math.min(S.items.length - 1, V.pos + (dx < 0 ? 1 : -1))));
    }
  };
  stage.addEventListener("pointermove", move);
  stage.addEventListener("pointerup", up);
});
$("#viewer-stage").addEventListener("dblclick", () => (V.fit ? actualSize() : fitViewer()));
window.addEventListener("resize", () => { if (!$("#viewer").hidden && V.fit) fitViewer(); });

async function viewerNext() {
  // at the end of what is loaded, wait for the next page rather than stopping
  while (V.pos + 1 >= S.items.length && !S.done) {
    if (S.loading) await new Promise((r) => setTimeout(r, 30));
    else await loadMore();
  }
  showViewerAt(Math.min(S.items.length - 1, V.pos + 1));
}

function viewerKey(ev) {
  const k = ev.key;
  if (k === "Escape") closeViewer();
  else if (k === "ArrowRight" || k === "PageDown") viewerNext();
  else if (k === "ArrowLeft" || k === "PageUp") showViewerAt(Math.max(0, V.pos - 1));
  else if (k === "+" || k === "=") zoomViewer(1.25);
  else if (k === "-") zoomViewer(1 / 1.25);
  else if (k === "0") fitViewer();
  else if (k === "i" || k === "I") { V.info = !V.info; $("#viewer-info").hidden = !V.info; }
  else if (/^[1-5]$/.test(k)) {
    if (k === "1" && ev.altKey) return actualSize();
    rate(Number(k)).then(() => showViewerAt(V.pos)).catch((e) => toast(e.message));
  } else if (k === "f" || k === "F") toggleFavorite().then(() => showViewerAt(V.pos)).catch((e) => toast(e.message));
  else if (k === "t" || k === "T") openTagDialog(false);
  else return;
  ev.preventDefault();
}

// dragging a tile out gives the original file: a drop on ComfyUI's canvas loads its
// workflow, A1111's PNG Info reads its parameters, a desktop drop saves it
const VIDEO_TYPES = { mp4: "video/mp4", mov: "video/quicktime", webm: "video/webm", mkv: "video/x-matroska" };
function dragOut(img, item) {
  img.draggable = true;
  img.addEventListener("dragstart", (ev) => {
    const url = new URL(safeUrl(item.file_url), location.origin).href;
    const ext = (item.format || "png").toLowerCase();
    const type = VIDEO_TYPES[ext] || `image/${ext === "jpg" ? "jpeg" : ext}`;
    ev.dataTransfer.setData("text/uri-list", url);
    ev.dataTransfer.setData("DownloadURL", `${type}:dreamdepot-${item.id}.${ext}:${url}`);
  });
}

// ---------------------------------------------------------------------------------------
// compare: two to four selected images side by side (or a swipe slider for two) at one
// synchronized zoom, with the word diff of their prompts and the parameters that differ
const C = { scale: 1, x: 0, y: 0, fit: true, data: null };

async function openCompare() {
  const ids = [...S.selected].slice(0, 4);
  if (ids.length < 2) return toast("Select two to four images to compare (Ctrl+click), then C");
  const data = await api(`/api/compare?ids=${ids.join(",")}`);
  C.data = data;
  $("#compare").hidden = false;
  $("#compare").focus();
  $("#compare-swipe").checked = false;
  $("#compare-swipe-label").hidden = data.images.length !== 2;
  renderCompare();
}

function renderCompare() {
  const swipe = $("#compare-swipe").checked;
  const panes = $("#compare-panes");
  panes.classList.toggle("swipe", swipe);
  $("#compare-slider").hidden = !swipe;
  panes.replaceChildren(...C.data.images.map((d) => {
    const img = el("img", { alt: "", draggable: "false" });
    img.src = safeUrl(d.file_url);
    img.dataset.id = d.id;
    img.addEventListener("load", () => { if (C.fit) fitCompare(); });
    return el("div", { class: "pane" }, img);
  }));
  $("#compare-title").textContent = `Comparing ${C.data.images.map((d) => `#${d.id}`).join(", ")}`;
  const rows = C.data.differing.map((p) => el("tr", {}, el("th", { text: p.name }),
    ...p.values.map((v) => el("td", { text: v == null ? "—" : String(v) }))));
  $("#compare-info").replaceChildren(
    ...C.data.images.map((d, i) => el("div", { class: "diff" },
      el("span", { class: "meta", text: `#${d.id}${i ? " vs first" : ""}: ` }),
      ...d.prompt_diff.map((x) => el("span", { class: x.op, text: `${x.text} ` })))),
    rows.length ? el("table", { id: "compare-params" }, el("tr", {}, el("th", { text: "differs" }),
      ...C.data.images.map((d) => el("th", { text: `#${d.id}` }))), ...rows)
      : el("div", { class: "meta", text: "No parameter differs." }));
  updateSwipe();
}

function updateSwipe() {
  const imgs = document.querySelectorAll("#compare-panes .pane");
  const v = Number($("#compare-slider").value);
  imgs.forEach((p, i) => { p.style.clipPath = $("#compare-swipe").checked && i === 1 ? `inset(0 0 0 ${v}%)` : ""; });
}

function applyCompare() {
  for (const img of document.querySelectorAll("#compare-panes img")) {
    img.style.transform = `translate(${C.x}px, ${C.y}px) scale(${C.scale})`;
  }
}

function fitCompare() {
  const img = document.querySelector("#compare-panes img");
  const pane = document.querySelector("#compare-panes .pane");
  if (!img || !pane || !img.naturalWidth) return;
  C.scale = Math.min(pane.clientWidth / img.naturalWidth, pane.clientHeight / img.naturalHeight);
  C.x = (pane.clientWidth - img.naturalWidth * C.scale) / 2;
  C.y = (pane.clientHeight - img.naturalHeight * C.scale) / 2;
  C.fit = true;
  applyCompare();
}

$("#compare-panes").addEventListener("wheel", (ev) => {
  const pane = ev.target.closest(".pane");
  if (!pane) return;
  ev.preventDefault();
  const r = pane.getBoundingClientRect();
  const px = ev.clientX - r.left, py = ev.clientY - r.top;
  const next = Math.max(0.05, Math.min(64, C.scale * (ev.deltaY < 0 ? 1.15 : 1 / 1.15)));
  C.x = px - (px - C.x) * (next / C.scale);
  C.y = py - (py - C.y) * (next / C.scale);
  C.scale = next;
  C.fit = false;
  applyCompare();
}, { passive: false });
$("#compare-panes").addEventListener("pointerdown", (ev) => {
  const start = { x: ev.clientX, y: ev.clientY, cx: C.x, cy: C.y };
  const panes = ev.currentTarget;
  panes.setPointerCapture(ev.pointerId);
  const move = (e) => { C.x = start.cx + e.clientX - start.x; C.y = start.cy + e.clientY - start.y; C.fit = false; applyCompare(); };
  const up = () => { panes.removeEventListener("pointermove", move); panes.removeEventListener("pointerup", up); };
  panes.addEventListener("pointermove", move);
  panes.addEventListener("pointerup", up);
});
$("#compare-swipe").addEventListener("change", () => { renderCompare(); });
$("#compare-slider").addEventListener("input", updateSwipe);

function compareKey(ev) {
  if (ev.key === "Escape") { $("#compare").hidden = true; scroller.focus(); }
  else if (ev.key === "0") fitCompare();
  else return;
  ev.preventDefault();
}

function thumb(item, onclick) {
  const img = el("img", { alt: "", title: item.prompt || "", decoding: "async" });
  dragOut(img, item);
  if (SAFE_DATA_URI.test(item.placeholder || "")) img.style.backgroundImage = `url("${item.placeholder}")`;
  img.src = safeUrl(item.thumbnail_url);
  img.addEventListener("click", onclick);
  return img;
}

async function copyText(text) {
  try { await navigator.clipboard.writeText(text); } catch {
    const area = el("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

function closeDetail() {
  $("#detail").hidden = true;
  $("#detail-video").pause();
  S.detailId = null;
  scroller.focus();
}
$("#detail .close").addEventListener("click", closeDetail);

// ---------------------------------------------------------------------------------------
// prompts page and albums page
async function showPrompts() {
  showView("prompts");
  const view = $("#prompts-view");
  const search = el("input", { type: "search", placeholder: "search prompts", id: "prompt-search" });
  const sort = el("select", { id: "prompt-sort" }, ...["count", "recent", "first", "text"].map((s) =>
    el("option", { value: s, text: `sort: ${s}` })));
  const list = el("div", { id: "prompt-list" });
  const more = el("button", { text: "Load more", hidden: "" });
  view.replaceChildren(el("div", { class: "toolbar" }, search, sort), list, more);
  let cursor = null;
  const load = async (reset) => {
    if (reset) { cursor = null; list.replaceChildren(); }
    const params = new URLSearchParams({ q: search.value, sort: sort.value, limit: "40" });
    if (cursor) params.set("cursor", cursor);
    const page = await api(`/api/prompts?${params}`);
    for (const p of page.items) {
      list.append(el("div", { class: "prompt-row" },
        el("div", {},
          el("div", { class: "text", text: p.text, onclick: () => setQuery(`prompt_id:${p.id}`) }),
          el("div", { class: "strip" }, ...(p.images || []).map((it) => thumb(it, () => openDetail(it.id))))),
        el("div", { class: "meta" },
          el("button", { text: "variants", class: "variants-btn", onclick: (ev) => showVariants(p, ev.target) }),
          el("div", { text: `${p.image_count.toLocaleString()} image(s)` }),
          el("div", { text: `first ${new Date(p.first_seen * 1000).toLocaleDateString()}` }),
          el("div", { text: `last ${new Date(p.last_seen * 1000).toLocaleDateString()}` }))));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  let timer = null;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => load(true), 200); });
  sort.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  await load(true);
}

async function showVariants(p, button) {
  const row = button.closest(".prompt-row");
  const old = row.querySelector(".variants");
  if (old) return old.remove();
  const box = el("div", { class: "variants" });
  row.firstChild.append(box);
  try {
    const { items } = await api(`/api/prompts/${p.id}/variants`);
    if (!items.length) box.textContent = "No near-variants of this prompt.";
    for (const v of items) {
      const diff = el("div", { class: "diff" }, ...v.diff.map((d) =>
        el("span", { class: d.op, text: `${d.text} ` })));
      box.append(el("div", {}, el("span", { class: "meta", text: `${v.score.toFixed(2)} · ${v.image_count} image(s) ` }), diff));
    }
  } catch (err) { box.textContent = err.message; }
}

async function showDream() {
  showView("dream");
  loadCacheStats();
}

async function loadCacheStats() {
  try {
    const s = await api("/api/cache/stats");
    $("#cache-stats").textContent = `${s.lookups} lookups · ${s.hits} hits · ${s.misses} misses · ` +
      `hit rate ${(s.hit_rate * 100).toFixed(0)}% · ${Math.round(s.gpu_seconds_saved)} GPU-seconds saved`;
  } catch (err) { $("#cache-stats").textContent = err.message; }
}

function dreamBody() {
  const [w, h] = ($("#dream-size").value.match(/^(\d+)\s*[x×]\s*(\d+)$/) || []).slice(1).map(Number);
  const body = { prompt: $("#dream-prompt").value };
  if ($("#dream-negative").value.trim()) body.negative_prompt = $("#dream-negative").value;
  if ($("#dream-model").value.trim()) body.model = $("#dream-model").value.trim();
  if (w && h) { body.width = w; body.height = h; }
  const hold = {};
  for (const part of $("#dream-hold").value.split(",")) {
    const [k, ...v] = part.split("=");
    if (k.trim() && v.length) hold[k.trim()] = v.join("=").trim();
  }
  body.hold = hold;
  if ($("#dream-scope").value.trim()) body.scope = $("#dream-scope").value.trim();
  return body;
}

// One decision, explained: hit or miss, the matched prompt, its similarity, the first
// contrasting difference; "generate anyway" beside a hit; what a miss queued.
function renderDream(r, body) {
  const out = $("#dream-result");
  const parts = [];
  if (r.hit) {
    parts.push(el("div", { class: "hit", text: `Hit: served from the library in ${r.lookup_ms.toFixed(0)} ms` }));
  } else {
    parts.push(el("div", { class: "miss", text: `Miss: ${r.reason}` }));
  }
  if (r.matched_prompt) {
    parts.push(el("div", { class: "dream-why" },
      el("span", { class: "meta", text: `nearest past prompt (similarity ${r.similarity.toFixed(3)}): ` }),
      el("span", { class: "matched", text: r.matched_prompt })));
  }
  if (r.contrast) {
    parts.push(el("div", { class: "dream-why contrast", text: `first difference (${r.contrast}): ${r.difference.join(", ")}` }));
  }
  if (r.held_not_applied && r.held_not_applied.length) {
    parts.push(el("div", { class: "meta", text: `held but set by the back end: ${r.held_not_applied.join(", ")}` }));
  }
  if (r.generated && r.generated.job) {
    parts.push(el("div", { class: "meta", text: `generating: job ${r.generated.job} (see Jobs)` }));
  }
  if (r.error) parts.push(el("div", { class: "miss", text: r.error }));
  if (r.hit) {
    parts.push(el("button", { id: "dream-anyway", text: "Generate anyway", onclick: () => sendDream({ ...body, force: true }) }));
  }
  parts.push(el("div", { class: "strip" }, ...r.images.map((it) => thumb(it, () => openDetail(it.id)))));
  out.replaceChildren(...parts);
}

async function sendDream(body) {
  const out = $("#dream-result");
  out.replaceChildren(el("div", { text: body.force ? "Queueing a generation…" : "Looking in the library…" }));
  try {
    renderDream(await api("/api/dream", { json: body }), body);
  } catch (err) { out.replaceChildren(el("div", { class: "miss", text: err.message })); }
  loadCacheStats();
}

$("#dream-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sendDream(dreamBody());
});

let dreamTimer = null;
$("#dream-prompt").addEventListener("input", (ev) => {
  clearTimeout(dreamTimer);
  dreamTimer = setTimeout(async () => {
    const box = $("#dream-suggest");
    const q = ev.target.value.trim();
    if (q.length < 3) return box.replaceChildren();
    try {
      const { items } = await api(`/api/suggest?q=${encodeURIComponent(q)}&limit=6`);
      box.replaceChildren(...items.slice(0, 8).map((it) => el("div", {
        text: `${it.text} (${it.image_count})`,
        onclick: () => { ev.target.value = it.text; box.replaceChildren(); },
      })));
    } catch { box.replaceChildren(); }
  }, 200);
});

// duplicates: exact copies and look-alikes, a keep suggestion each; M (or the button) tags
// the others of the first unmarked group marked-for-deletion — nothing is deleted
async function showDuplicates() {
  showView("duplicates");
  const view = $("#duplicates-view");
  const kind = el("select", { id: "dup-kind" }, el("option", { value: "near", text: "look-alikes" }),
    el("option", { value: "exact", text: "exact copies (one image, several files)" }));
  const list = el("div", { id: "dup-list" });
  view.replaceChildren(el("div", { class: "toolbar" }, kind,
    el("span", { class: "meta", text: "M: mark the others of the next group for deletion (a tag; nothing is deleted)" })), list);
  const load = async () => {
    list.replaceChildren(el("div", { text: "Looking for duplicates…" }));
    const { groups } = await api(`/api/duplicates?kind=${kind.value}`);
    if (!groups.length) return list.replaceChildren(el("div", { text: "No duplicates found." }));
    list.replaceChildren(...groups.map((g) => {
      const row = el("div", { class: "dup-group", dataset: { keep: g.keep } });
      const strip = el("div", { class: "strip" }, ...g.images.map((it) => {
        const t = thumb(it, () => openDetail(it.id));
        t.dataset.id = it.id;
        if (it.id === g.keep) t.classList.add("keep");
        t.title = `${it.id === g.keep ? "keep (suggested) · " : ""}${it.width}×${it.height}` +
          (it.distance != null ? ` · ${it.distance} bits` : "") + (it.paths ? ` · ${it.paths.join(", ")}` : "");
        return t;
      }));
      const others = g.images.filter((it) => it.id !== g.keep).map((it) => it.id);
      const button = el("button", { class: "dup-mark", text: others.length ? `Mark ${others.length} other(s) for deletion` : "Keep all (one image)" });
      if (!others.length) button.disabled = true;
      button.addEventListener("click", async () => {
        await api("/api/tags", { json: { tags: ["marked-for-deletion"], ids: others } });
        row.classList.add("marked");
        button.disabled = true;
        button.textContent = `Marked ${others.length} for deletion`;
        toast(`Tagged ${others.length} image(s) marked-for-deletion; nothing is deleted`);
      });
      row.append(strip, button);
      return row;
    }));
  };
  kind.addEventListener("change", load);
  await load();
}

document.addEventListener("keydown", (ev) => {
  if ($("#duplicates-view").hidden || ev.target.closest("input, textarea, select, dialog")) return;
  if (ev.key === "m" || ev.key === "M") {
    const next = document.querySelector(".dup-group:not(.marked) .dup-mark:not([disabled])");
    if (next) next.click();
  }
});

async function showAlbums() {
  showView("albums");
  const view = $("#albums-view");
  const name = el("input", { placeholder: "new album name" });
  const create = el("button", { text: "Create album", onclick: async () => {
    if (!name.value.trim()) return;
    try { await api("/api/albums", { json: { name: name.value } }); showAlbums(); } catch (e) { toast(e.message); }
  } });
  const { albums } = await api("/api/albums");
  view.replaceChildren(el("div", { class: "toolbar" }, name, create),
    ...albums.map((a) => el("div", { class: "prompt-row" },
      el("a", { href: `#/?q=${encodeURIComponent(`album:${quoteValue(a.name)}`)}`, text: a.name }),
      el("span", { class: "meta", text: `${a.count} image(s)` }))));
}

async function addSelectionToAlbum() {
  const { albums } = await api("/api/albums");
  const names = albums.map((a) => a.name).join(", ");
  const name = prompt(`Album name${names ? ` (existing: ${names})` : ""}:`);
  if (!name) return;
  let album = albums.find((a) => a.name.toLowerCase() === name.trim().toLowerCase());
  if (!album) album = await api("/api/albums", { json: { name } });
  const body = S.allInQuery ? { q: S.q } : { ids: targetIds() };
  const r = await api(`/api/albums/${album.id}/images`, { json: body });
  toast(`Added ${r.added} image(s) to ${album.name}`);
}

function showView(name) {
  $("#grid-view").hidden = name !== "grid";
  $("#prompts-view").hidden = name !== "prompts";
  $("#albums-view").hidden = name !== "albums";
  $("#dream-view").hidden = name !== "dream";
  $("#duplicates-view").hidden = name !== "duplicates";
  for (const a of document.querySelectorAll("#topbar nav a")) {
    a.classList.toggle("active", a.dataset.view === name);
  }
}

// ---------------------------------------------------------------------------------------
// search box: query language with autocomplete; saved searches
const FIELD_SUGGEST = { "tag:": "tags", "-tag:": "tags", "model:": "model", "lora:": "lora",
  "sampler:": "sampler", "generator:": "generator" };

$("#search").addEventListener("input", async (ev) => {
  const words = ev.target.value.split(" ");
  const last = words[words.length - 1];
  const box = $("#suggest");
  const field = Object.keys(FIELD_SUGGEST).find((f) => last.startsWith(f));
  let options = [];
  try {
    if (field) {
      const prefix = last.slice(field.length).replace(/^"/, "");
      const kind = FIELD_SUGGEST[field];
      const r = kind === "tags"
        ? await api(`/api/tags/suggest?prefix=${encodeURIComponent(prefix)}&limit=10`)
        : await api(`/api/values/${kind}?prefix=${encodeURIComponent(prefix)}&limit=10`);
      options = (r.tags || r.values).map((t) => ({ label: `${t.name} (${t.count})`, value: field + quoteValue(t.name) }));
    } else if (last.length >= 2 && !last.includes(":")) {
      const r = await api(`/api/values/word?prefix=${encodeURIComponent(last)}&limit=6`);
      options = r.values.map((t) => ({ label: `${t.name} (${t.count})`, value: t.name }));
      const free = words.filter((w) => !w.includes(":")).join(" ");
      const s = await api(`/api/suggest?q=${encodeURIComponent(free)}&limit=4`).catch(() => ({ items: [] }));
      for (const it of s.items.slice(0, 6)) {
        options.push({ label: `prompt: ${it.text} (${it.image_count})`, replaceAll: `prompt_id:${it.id}` });
      }
    }
  } catch { options = []; }
  box.hidden = !options.length;
  box.replaceChildren(...options.map((o) => el("div", { text: o.label, onclick: () => {
    if (o.replaceAll) { setQuery(o.replaceAll); box.hidden = true; return; }
    words[words.length - 1] = o.value;
    ev.target.value = `${words.join(" ")} `;
    box.hidden = true;
    ev.target.focus();
  } })));
});
$("#search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  $("#suggest").hidden = true;
  setQuery($("#search").value);
});

function savedSearches() { return JSON.parse(localStorage.getItem("dd.saved") || "[]"); }
function renderSaved() {
  $("#saved").replaceChildren(...savedSearches().map((q) => el("li", {},
    el("span", { text: q || "(everything)", onclick: () => setQuery(q) }),
    el("button", { text: "×", title: "Forget", onclick: () => {
      localStorage.setItem("dd.saved", JSON.stringify(savedSearches().filter((s) => s !== q)));
      renderSaved();
    } }))));
}
$("#save-search").addEventListener("click", () => {
  const list = savedSearches();
  if (!list.includes(S.q)) list.push(S.q);
  localStorage.setItem("dd.saved", JSON.stringify(list));
  renderSaved();
});

// ---------------------------------------------------------------------------------------
// events
scroller.addEventListener("scroll", () => requestAnimationFrame(render), { passive: true });
window.addEventListener("resize", () => layout());
$("#tile-size").value = S.tile;
$("#tile-size").addEventListener("input", (ev) => {
  S.tile = Number(ev.target.value);
  localStorage.setItem("dd.tile", S.tile);
  layout();
});
grid.addEventListener("click", (ev) => {
  const tile = ev.target.closest(".tile");
  if (tile) { selectPos(Number(tile.dataset.pos), ev); scroller.focus(); }
});
grid.addEventListener("dblclick", (ev) => {
  const tile = ev.target.closest(".tile");
  if (tile) openDetail(Number(tile.dataset.id));
});
$("#selection-bar").addEventListener("click", (ev) => {
  const act = ev.target.dataset.act;
  if (act === "tag") openTagDialog(false);
  else if (act === "untag") openTagDialog(true);
  else if (act === "reject") openTagDialog("reject");
  else if (act === "accept") openTagDialog("accept");
  else if (act === "batch") selectBatch();
  else if (act === "compare") openCompare().catch((e) => toast(e.message));
  else if (act === "all") { S.allInQuery = true; S.selected.clear(); refreshTiles(); }
  else if (act === "album") addSelectionToAlbum().catch((e) => toast(e.message));
  else if (act === "undo") undo().catch((e) => toast(e.message));
  else if (act === "clear") { S.selected.clear(); S.allInQuery = false; refreshTiles(); }
});

document.addEventListener("keydown", (ev) => {
  if (!$("#compare").hidden && ev.key === "Escape" && !ev.target.closest("dialog")) {
    return compareKey(ev);  // also from the slider or the swipe switch
  }
  if (ev.target.closest("input, textarea, select, dialog")) {
    if (ev.key === "Escape") ev.target.blur();
    return;
  }
  if (!$("#viewer").hidden) return viewerKey(ev);
  if (!$("#compare").hidden) return compareKey(ev);
  if (!$("#detail").hidden) {
    if (ev.key === "Escape" || ev.key === " ") { ev.preventDefault(); closeDetail(); }
    else if (ev.key === "v" || ev.key === "V") { ev.preventDefault(); $("#detail-fullscreen")?.click(); }
    return;
  }
  if ($("#grid-view").hidden) return;
  const k = ev.key;
  if (k === "ArrowRight") { ev.preventDefault(); moveFocus(1, ev); }
  else if (k === "ArrowLeft") { ev.preventDefault(); moveFocus(-1, ev); }
  else if (k === "ArrowDown") { ev.preventDefault(); moveFocus(S.cols, ev); }
  else if (k === "ArrowUp") { ev.preventDefault(); moveFocus(-S.cols, ev); }
  else if (k === " ") {
    ev.preventDefault();
    const item = S.items[S.focus];
    if (item) openDetail(item.id);
  } else if (k === "v" || k === "V" || k === "Enter" && ev.altKey) {
    ev.preventDefault();
    openViewer(S.focus >= 0 ? S.focus : 0);
  } else if (k === "c" || k === "C") { ev.preventDefault(); openCompare().catch((e) => toast(e.message)); }
  else if (k === "t" || k === "T") { ev.preventDefault(); openTagDialog(false); }
  else if (/^[0-5]$/.test(k)) rate(Number(k) || null).catch((e) => toast(e.message));
  else if (k === "f" || k === "F") toggleFavorite().catch((e) => toast(e.message));
  else if (k === "Delete") markForDeletion().catch((e) => toast(e.message));
  else if (k === "Escape") { S.selected.clear(); S.allInQuery = false; refreshTiles(); }
  else if ((ev.ctrlKey || ev.metaKey) && k === "a") {
    ev.preventDefault();
    for (const item of S.items) S.selected.add(item.id);
    refreshTiles();
  } else if ((ev.ctrlKey || ev.metaKey) && k === "z") undo().catch((e) => toast(e.message));
  else if (k === "Enter" && S.focus >= 0) selectPos(S.focus, ev);
});

// Chromium fires popstate and then hashchange for one click on a link: route once per
// address, or the second call rebuilds a page under the user's first keystrokes
let routedHash = null;

function route() {
  const hash = location.hash || "#/";
  if (hash === routedHash) return;
  routedHash = hash;
  if (hash.startsWith("#/prompts")) return showPrompts();
  if (hash.startsWith("#/albums")) return showAlbums();
  if (hash.startsWith("#/dream")) return showDream();
  if (hash.startsWith("#/duplicates")) return showDuplicates();
  const m = hash.match(/^#\/\?q=(.*)$/);
  setQuery(m ? decodeURIComponent(m[1]) : "", false);
}
window.addEventListener("popstate", route);
window.addEventListener("hashchange", route);

// live updates: server-sent events from scans, the watcher and the thumbnailer
let refreshTimer = null;
function refreshSoon(count) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    if (scroller.scrollTop < S.rowH && !S.selected.size) resetGrid();
    else toast(`${count || "New"} image(s) indexed — click to show`, 6000, () => resetGrid());
  }, 400);
}

function listen() {
  const source = new EventSource("/api/events");
  source.addEventListener("scan", (ev) => {
    const d = JSON.parse(ev.data);
    $("#status").textContent = d.stage === "done" ? `scan done: ${d.new_images} new` : `${d.stage} ${d.done}/${d.total}`;
    if (d.stage === "done" && d.new_images) refreshSoon(d.new_images);
  });
  source.addEventListener("indexed", (ev) => refreshSoon(JSON.parse(ev.data).count));
  source.addEventListener("job", (ev) => {
    const d = JSON.parse(ev.data);
    $("#status").textContent = `job ${d.id}: ${d.status}` +
      (d.status === "running" && d.progress != null ? ` ${Math.round(d.progress * 100)}%` : "");
    if (d.status === "done") refreshSoon((d.image_ids || []).length);
    if (d.status === "failed") toast(`Job ${d.id} failed: ${d.error}`, 6000);
  });
  source.addEventListener("watcher", (ev) => {
    const d = JSON.parse(ev.data);
    if (d.state === "restarting") {
      $("#status").textContent = `live updates interrupted (${d.reason}); re-scanning`;
    } else if (d.state === "live" && d.restarts) {
      $("#status").textContent = "live updates back on";
    }
  });
  source.addEventListener("thumbnails", (ev) => {
    const d = JSON.parse(ev.data);
    if (d.stage !== "done") $("#status").textContent = `thumbnails ${d.done}/${d.total}`;
  });
}

// -- accounts and uploads (a shared instance) ----------------------------------------------

// an invitation link (#/invite/TOKEN) makes an account instead of signing in to one
const inviteToken = () => (location.hash.match(/^#\/invite\/([A-Za-z0-9_-]+)$/) || [])[1] || null;

function showLogin(message) {
  const dlg = $("#login");
  $("#login-error").textContent = message || "";
  if (inviteToken()) {
    $("#login-title").textContent = "Create your Dream Depot account";
    $("#login-go").textContent = "Create account";
  }
  dlg.hidden = false;
  $("#login-name").focus();
  api("/api/login/methods").then((m) => { $("#login-sso").hidden = !m.oidc || !!inviteToken(); }).catch(() => {});
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("#login-name").value;
  const password = $("#login-password").value;
  try {
    const token = inviteToken();
    if (token) await api("/api/invitations/accept", { json: { token, name, password } });
    else await api("/api/login", { json: { name, password } });
    if (token) location.hash = "#/";
    location.reload();
  } catch (err) {
    $("#login-error").textContent = err.status === 429 ? "Too many tries: wait a few minutes" : err.message;
  }
});

function showUser() {
  const box = $("#user");
  box.hidden = false;
  $("#user-name").textContent = `${ME.display_name} (${ME.role})`;
  $("#sign-out").onclick = async () => {
    await api("/api/logout", { json: {} }).catch(() => {});
    location.reload();
  };
  if (ME.role !== "admin") $("#folders").closest("section").hidden = true;  // admins' only
}

async function upload(files) {
  const list = [...files];
  if (!list.length) return;
  const form = new FormData();
  for (const f of list) form.append("files", f, f.name);
  $("#status").textContent = `uploading ${list.length} file(s)…`;
  try {
    const r = await api("/api/uploads", { form });
    const kept = r.items.filter((i) => i.id != null).length;
    const refused = r.items.filter((i) => i.error);
    toast(`Uploaded ${kept} file(s)` + (refused.length ? `; refused: ${refused.map((i) => `${i.name} (${i.error})`).join(", ")}` : ""), 6000);
    refreshSoon(kept);
  } catch (err) {
    toast(`Upload refused: ${err.message}`, 6000);
  }
  $("#status").textContent = "";
}

$("#upload-input").addEventListener("change", (ev) => { upload(ev.target.files); ev.target.value = ""; });
document.addEventListener("dragover", (ev) => {
  if ([...(ev.dataTransfer?.types || [])].includes("Files")) { ev.preventDefault(); document.body.classList.add("dropping"); }
});
document.addEventListener("dragleave", (ev) => { if (!ev.relatedTarget) document.body.classList.remove("dropping"); });
document.addEventListener("drop", (ev) => {
  if (!ev.dataTransfer?.files?.length) return;
  ev.preventDefault();
  document.body.classList.remove("dropping");
  upload(ev.dataTransfer.files);
});

async function boot() {
  try {
    Object.assign(ME, await api("/api/me"));
  } catch (err) {
    if (err.status === 401) { showLogin(); return; }
  }
  if (ME.accounts) showUser();
  renderSaved();
  layout();
  route();
  // the sidebar fills whichever page the address opens (#/dream, #/prompts …)
  if (location.hash.startsWith("#/") && !location.hash.startsWith("#/?") && location.hash !== "#/") {
    loadTags();
    loadFolders();
  }
  listen();
}

boot();
