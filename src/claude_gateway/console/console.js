// claude-gateway console: a client of the public API only (REST and SSE), in plain
// browser modules with no build step. Everything a model, a user or a file name says is
// put on the page as text (never as HTML), so nothing it contains can run.

const KEY = "claude-gateway.key";
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const connection = document.getElementById("connection");
let view = null; // the screen shown now: { stop() }

// -- helpers ------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function key() { return sessionStorage.getItem(KEY); }

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
  }
}

async function api(path, { method = "GET", body, signal, headers = {} } = {}) {
  const sent = key() ? { Authorization: `Bearer ${key()}` } : {};
  Object.assign(sent, headers);
  if (body !== undefined) sent["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers: sent, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function when(text) {
  if (!text) return "";
  const moment = new Date(text);
  return moment.toLocaleString();
}

function money(value) { return value ? `$${Number(value).toFixed(4)}` : "$0"; }

function show(...nodes) {
  if (view) view.stop();
  view = null;
  main.replaceChildren(...nodes);
}

function setReconnecting(on) {
  connection.textContent = on ? "Reconnecting…" : "";
}

// -- signing in ---------------------------------------------------------------------
async function signedIn() {
  try {
    await api("/v1/sessions?limit=1");
    return true;
  } catch (error) {
    if (error.status === 401) return false;
    throw error;
  }
}

function signInScreen(message = "") {
  nav.hidden = true;
  const field = el("input", { id: "api-key", type: "password", autocomplete: "off",
                               required: true });
  const problem = el("p", { class: "error", role: "alert", text: message });
  const form = el("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    const value = field.value.trim();
    try {
      await api("/v1/sessions?limit=1", { headers: { Authorization: `Bearer ${value}` } });
    } catch (error) {
      problem.textContent = error.message; // the API's own words (401: not a valid key)
      field.focus();
      return;
    }
    sessionStorage.setItem(KEY, value);
    route();
  } },
  el("h1", { text: "Sign in" }),
  el("label", { for: "api-key", text: "API key" }), field,
  el("div", { class: "bar" }, el("button", { type: "submit", class: "primary", text: "Sign in" })),
  problem);
  show(form);
  field.focus();
}

// -- sessions -------------------------------------------------------------------------
const MODES = ["default", "acceptEdits", "plan", "dontAsk"];

function newSessionDialog() {
  const workspace = el("input", { id: "ns-workspace", placeholder: "a fresh directory" });
  const model = el("input", { id: "ns-model", placeholder: "the gateway's default" });
  const mode = el("select", { id: "ns-mode" }, MODES.map((m) => el("option", { value: m, text: m })));
  const append = el("textarea", { id: "ns-append", rows: 3 });
  const problem = el("p", { class: "error", role: "alert" });
  const dialog = el("dialog", { "aria-labelledby": "ns-title" });
  const form = el("form", { method: "dialog", onsubmit: async (event) => {
    event.preventDefault();
    const body = { permissionMode: mode.value };
    if (workspace.value.trim()) body.workspace = workspace.value.trim();
    if (model.value.trim()) body.model = model.value.trim();
    if (append.value.trim()) body.appendSystemPrompt = append.value;
    submit.disabled = true;
    try {
      const session = await api("/v1/sessions", { method: "POST", body });
      dialog.close();
      dialog.remove();
      location.hash = `#/session/${session.id}`;
    } catch (error) {
      problem.textContent = error.message;
      submit.disabled = false;
    }
  } });
  const submit = el("button", { type: "submit", class: "primary", text: "Create session" });
  form.append(
    el("h2", { id: "ns-title", text: "New session" }),
    el("label", { for: "ns-workspace", text: "Workspace" }), workspace,
    el("label", { for: "ns-model", text: "Model" }), model,
    el("label", { for: "ns-mode", text: "Permission mode" }), mode,
    el("label", { for: "ns-append", text: "Append to system prompt" }), append,
    problem,
    el("div", { class: "bar" }, submit,
       el("button", { type: "button", text: "Cancel", onclick: () => { dialog.close(); dialog.remove(); } })));
  dialog.append(form);
  document.body.append(dialog);
  dialog.showModal();
  workspace.focus();
}

async function sessionsScreen() {
  nav.hidden = false;
  const status = el("select", { id: "filter-status" },
    ["", "starting", "idle", "running", "stopped", "failed", "expired", "ended"].map(
      (s) => el("option", { value: s, text: s || "any status" })));
  const search = el("input", { id: "filter-text", type: "search", placeholder: "Search" });
  const body = el("tbody");
  const problem = el("p", { class: "error", role: "alert" });
  let rows = [];
  const render = () => {
    const text = search.value.trim().toLowerCase();
    body.replaceChildren(...rows.filter((s) => !text || [s.id, s.workspace, s.model, s.status]
      .join(" ").toLowerCase().includes(text)).map((s) => el("tr", {},
      el("td", {}, el("a", { href: `#/session/${s.id}`, text: s.workspace || s.id })),
      el("td", {}, el("span", { class: "status", text: s.status })),
      el("td", { text: s.model || "default" }),
      el("td", { text: when(s.lastActivityAt) }),
      el("td", { text: `${(s.usage && (s.usage.inputTokens + s.usage.outputTokens)) || 0} tokens` }),
      el("td", { text: money(s.usage && s.usage.totalCostUsd) }))));
    if (!body.children.length) {
      body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "No sessions." })));
    }
  };
  const load = async () => {
    try {
      const query = status.value ? `&status=${encodeURIComponent(status.value)}` : "";
      rows = (await api(`/v1/sessions?limit=200${query}`)).sessions;
      problem.textContent = "";
    } catch (error) { problem.textContent = error.message; }
    render();
  };
  status.addEventListener("change", load);
  search.addEventListener("input", render);
  show(
    el("div", { class: "row" }, el("h1", { class: "grow", text: "Sessions" }),
       el("button", { type: "button", class: "primary", text: "New session", onclick: newSessionDialog })),
    el("div", { class: "bar" },
       el("label", { for: "filter-status", class: "sr", text: "Status" }), status,
       el("label", { for: "filter-text", class: "sr", text: "Search" }), search),
    problem,
    el("table", { class: "sessions" },
       el("thead", {}, el("tr", {}, ["Workspace", "Status", "Model", "Last activity", "Usage", "Cost"]
         .map((h) => el("th", { text: h })))), body));
  await load();
}

// -- following a session's events ------------------------------------------------------
// SSE read with fetch (an EventSource cannot send the key in a header, and the key never
// goes in a URL). After a dropped connection it comes back with Last-Event-ID, so no
// event is missed or shown twice.
function follow(sessionId, onEvent, from = 0) {
  const control = new AbortController();
  let last = from;
  let stopped = false;
  (async () => {
    let delay = 250;
    while (!stopped) {
      try {
        const headers = { Accept: "text/event-stream", "Last-Event-ID": String(last) };
        if (key()) headers.Authorization = `Bearer ${key()}`;
        const response = await fetch(`/v1/sessions/${encodeURIComponent(sessionId)}/events`,
                                      { headers, signal: control.signal });
        if (!response.ok) {
          const body = await response.json().catch(() => null);
          throw new ApiError(response.status, body);
        }
        setReconnecting(false);
        delay = 250;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        let data = [];
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let newline;
          while ((newline = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, newline).replace(/\r$/, "");
            buffer = buffer.slice(newline + 1);
            if (line === "") {
              if (data.length) {
                const envelope = JSON.parse(data.join("\n"));
                data = [];
                if (envelope.seq > last) {
                  last = envelope.seq;
                  onEvent(envelope);
                }
              }
            } else if (line.startsWith("data:")) {
              data.push(line.slice(5).replace(/^ /, ""));
            }
          }
        }
      } catch (error) {
        if (stopped) return;
        if (error.status === 404 || error.status === 401) {
          onEvent({ type: "console.error", data: { message: error.message } });
          return;
        }
      }
      if (stopped) return;
      setReconnecting(true);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 4000);
    }
  })();
  return () => { stopped = true; control.abort(); setReconnecting(false); };
}

// -- the session view -------------------------------------------------------------------
function blockText(block) {
  if (typeof block === "string") return block;
  if (Array.isArray(block)) return block.map(blockText).join("\n");
  if (block && block.type === "text") return block.text;
  return JSON.stringify(block, null, 2);
}

function renderPrompt(blocks) {
  const parts = [];
  for (const block of Array.isArray(blocks) ? blocks : [{ type: "text", text: String(blocks) }]) {
    if (block.type === "text") parts.push(el("span", { text: block.text }));
    else if (block.type === "image" && block.source && block.source.type === "base64") {
      parts.push(el("img", { class: "shown", alt: "image",
                             src: `data:${block.source.media_type};base64,${block.source.data}` }));
    }
  }
  return parts;
}

async function sessionScreen(sessionId) {
  nav.hidden = false;
  let session;
  try {
    session = await api(`/v1/sessions/${encodeURIComponent(sessionId)}`);
  } catch (error) {
    show(el("p", { class: "error", role: "alert", text: error.message }));
    return;
  }
  const title = el("h1", { class: "grow", text: session.workspace || session.id });
  const state = el("span", { class: "status", text: session.status });
  const context = el("span", { class: "muted" });
  const log = el("div", { class: "log", role: "log", "aria-label": "Transcript",
                          "aria-live": "polite" });
  const banners = el("div", { "aria-live": "assertive" });
  const queue = el("ul", { class: "muted", "aria-label": "Waiting to run" });
  const prompt = el("textarea", { id: "prompt", rows: 3 });
  const problem = el("p", { class: "error", role: "alert" });
  const modelField = el("input", { id: "model", value: session.model || "", size: 14 });
  const modeField = el("select", { id: "permission-mode" },
    MODES.map((m) => el("option", { value: m, text: m, selected: m === session.permissionMode })));

  const updateContext = (s) => {
    const budget = s.tokenBudget || {};
    const used = budget.contextTokens;
    context.textContent = `${used ? `${used} / ${budget.contextWindow || "?"} tokens of context · ` : ""}`
      + `${money(s.usage && s.usage.totalCostUsd)}`;
  };
  updateContext(session);

  // Images to send with the next prompt: attached with the file picker or pasted.
  let images = [];
  const attached = el("div", { class: "bar", "aria-label": "Attached images" });
  const imageInput = el("input", { id: "image", type: "file", accept: "image/png,image/jpeg,image/gif,image/webp", multiple: true });
  const attach = async (files) => {
    for (const file of files) {
      if (!file.type.startsWith("image/")) continue;
      const data = await new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
        reader.onerror = () => reject(reader.error);
        reader.readAsDataURL(file);
      });
      images.push({ type: "image", source: { type: "base64", media_type: file.type, data } });
      attached.append(el("img", { class: "thumb", alt: `attached ${file.name || "image"}`,
                                  src: `data:${file.type};base64,${data}` }));
    }
  };
  imageInput.addEventListener("change", async () => { await attach(imageInput.files); imageInput.value = ""; });
  prompt.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (files.length) { event.preventDefault(); attach(files); }
  });

  const send = async (event) => {
    event.preventDefault();
    const text = prompt.value;
    if (!text.trim() && !images.length) return;
    problem.textContent = "";
    const body = images.length ? [...(text.trim() ? [{ type: "text", text }] : []), ...images] : text;
    try {
      await api(`/v1/sessions/${encodeURIComponent(sessionId)}/messages`, {
        method: "POST", body: { prompt: body, timeoutMs: 0,
                                clientId: `console-${crypto.randomUUID()}` } });
      prompt.value = "";
      images = [];
      attached.replaceChildren();
    } catch (error) { problem.textContent = error.message; }
    prompt.focus();
  };
  const interrupt = async () => {
    try {
      await api(`/v1/sessions/${encodeURIComponent(sessionId)}/interrupt`, { method: "POST" });
    } catch (error) { problem.textContent = error.message; }
  };
  const change = async (body) => {
    try {
      const updated = await api(`/v1/sessions/${encodeURIComponent(sessionId)}`,
                                { method: "PATCH", body });
      problem.textContent = "";
      updateContext(updated);
    } catch (error) { problem.textContent = error.message; }
  };
  modelField.addEventListener("change", () => change({ model: modelField.value.trim() }));
  modeField.addEventListener("change", () => change({ permissionMode: modeField.value }));

  show(
    el("div", { class: "row" }, title, state),
    el("div", { class: "bar" },
       el("a", { href: `#/files/${encodeURIComponent(sessionId)}`, text: "Files" }),
       el("a", { href: `#/events/${encodeURIComponent(sessionId)}`, text: "Events" })),
    el("p", { class: "muted" }, context),
    banners, log, queue,
    el("form", { class: "composer card", onsubmit: send },
       el("label", { for: "prompt", text: "Prompt" }), prompt, attached,
       el("div", { class: "bar" },
          el("label", { for: "image", class: "button-like", text: "Attach image" }), imageInput,
          el("button", { type: "submit", class: "primary", text: "Send" }),
          el("button", { type: "button", class: "danger", text: "Interrupt", onclick: interrupt }),
          el("label", { for: "model", text: "Model" }), modelField,
          el("label", { for: "permission-mode", text: "Permission mode" }), modeField),
       problem));

  // What the log holds, so every event shows once, in place.
  const streaming = new Map(); // turnId -> { node, text }
  const tools = new Map(); // tool_use id -> result element
  const queued = new Map(); // turnId -> li
  const asked = new Map(); // requestId -> banner

  const stream = (turnId) => {
    let live = streaming.get(turnId);
    if (!live) {
      live = { node: el("div", { class: "bubble assistant", "data-turn": turnId }), text: "" };
      streaming.set(turnId, live);
      log.append(live.node);
    }
    return live;
  };

  const assistant = (envelope) => {
    const live = streaming.get(envelope.turnId);
    const nodes = [];
    for (const block of envelope.data.content || []) {
      if (block.type === "text") {
        nodes.push(el("div", { class: "bubble assistant", text: block.text }));
      } else if (block.type === "thinking") {
        nodes.push(el("details", { class: "card" }, el("summary", { text: "Thinking" }),
                      el("div", { class: "bubble", text: block.thinking })));
      } else if (block.type === "tool_use") {
        const result = el("div", { class: "muted", text: "…" });
        tools.set(block.id, result);
        nodes.push(el("div", { class: "card tool" },
          el("strong", { text: block.name }),
          el("pre", { text: JSON.stringify(block.input, null, 2) }), result));
      }
    }
    if (live) {
      live.node.replaceWith(...nodes);
      streaming.delete(envelope.turnId);
    } else {
      log.append(...nodes);
    }
  };

  const onEvent = (envelope) => {
    const data = envelope.data || {};
    switch (envelope.type) {
      case "turn.queued": {
        log.append(el("div", { class: "bubble user" }, renderPrompt(data.prompt)));
        const item = el("li", { text: blockText(data.prompt).slice(0, 80) });
        queued.set(envelope.turnId, item);
        queue.append(item);
        break;
      }
      case "turn.started": {
        const item = queued.get(envelope.turnId);
        if (item) { item.remove(); queued.delete(envelope.turnId); }
        state.textContent = "running";
        break;
      }
      case "message.delta":
        if (data.kind === "text" && !data.parentToolUseId) {
          const live = stream(envelope.turnId);
          live.text += data.text;
          live.node.textContent = live.text;
        }
        break;
      case "message":
        if (data.parentToolUseId) break;
        if (data.role === "assistant") assistant(envelope);
        else {
          for (const block of data.content || []) {
            if (block.type === "tool_result" && tools.has(block.tool_use_id)) {
              const target = tools.get(block.tool_use_id);
              target.className = block.is_error ? "error" : "";
              target.replaceChildren(el("pre", { text: blockText(block.content) }));
            }
          }
        }
        break;
      case "permission.requested":
        asked.set(data.requestId, permissionBanner(sessionId, data, problem));
        banners.append(asked.get(data.requestId));
        break;
      case "permission.resolved": {
        const banner = asked.get(data.requestId);
        if (banner) { banner.remove(); asked.delete(data.requestId); }
        break;
      }
      case "turn.completed":
      case "turn.failed":
      case "turn.interrupted": {
        const item = queued.get(envelope.turnId);
        if (item) { item.remove(); queued.delete(envelope.turnId); }
        const live = streaming.get(envelope.turnId);
        if (live && !live.text) live.node.remove();
        streaming.delete(envelope.turnId);
        state.textContent = "idle";
        const kind = envelope.type.slice(5);
        const note = kind === "completed"
          ? `Turn completed · ${money(data.totalCostUsd || data.costUsd)}`
          : kind === "failed" ? `Turn failed: ${(data.error && data.error.message) || ""}`
            : "Turn interrupted";
        log.append(el("p", { class: `notice ${kind}`, text: note }));
        api(`/v1/sessions/${encodeURIComponent(sessionId)}`).then(updateContext, () => {});
        break;
      }
      case "session.ended":
        state.textContent = data.status || "ended";
        break;
      case "console.error":
        problem.textContent = data.message;
        break;
      default:
        break;
    }
  };
  view = { stop: follow(sessionId, onEvent) };
  prompt.focus();
}

function permissionBanner(sessionId, request, problem, after = () => {}) {
  const message = el("input", { id: `deny-${request.requestId}`, placeholder: "Why not (the model reads it)" });
  const answer = async (body) => {
    try {
      await api(`/v1/sessions/${encodeURIComponent(sessionId)}/permissions/${encodeURIComponent(request.requestId)}`,
                { method: "POST", body });
      after();
    } catch (error) { problem.textContent = error.message; }
  };
  const input = request.input || {};
  const detail = input.file_path || input.path || input.command || "";
  const hasSuggestions = Array.isArray(request.suggestions) && request.suggestions.length > 0;
  return el("div", { class: "card banner", role: "group", "aria-label": `Permission: ${request.toolName}` },
    el("strong", { text: `${request.toolName} wants to run` }),
    detail ? el("div", {}, el("code", { text: detail })) : null,
    el("pre", { text: input.content !== undefined || input.new_string !== undefined
      ? [input.old_string !== undefined ? `- ${input.old_string}` : null,
         input.new_string !== undefined ? `+ ${input.new_string}` : null,
         input.content !== undefined ? input.content : null].filter((x) => x !== null).join("\n")
      : JSON.stringify(input, null, 2) }),
    el("div", { class: "bar" },
       el("button", { type: "button", class: "primary", text: "Allow",
                      onclick: () => answer({ decision: "allow" }) }),
       el("button", { type: "button", text: "Always allow",
                      title: hasSuggestions ? "Allow, and apply the CLI's suggestion for this session" : "Allow",
                      onclick: () => answer({ decision: "allow", applySuggestions: hasSuggestions }) }),
       el("label", { for: `deny-${request.requestId}`, class: "sr", text: "Deny message" }), message,
       el("button", { type: "button", class: "danger", text: "Deny",
                      onclick: () => answer({ decision: "deny", message: message.value || undefined }) })));
}


// -- files ----------------------------------------------------------------------------
function filePath(...parts) {
  return parts.filter((p) => p).join("/").split("/").filter((p) => p)
    .map(encodeURIComponent).join("/");
}

async function fetchBlob(path) {
  const headers = key() ? { Authorization: `Bearer ${key()}` } : {};
  const response = await fetch(`/v1/files/${path}`, { headers });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  return response.blob();
}

async function filesScreen(sessionId, sub) {
  nav.hidden = false;
  const problem = el("p", { class: "error", role: "alert" });
  let session;
  try {
    session = await api(`/v1/sessions/${encodeURIComponent(sessionId)}`);
  } catch (error) {
    show(problem); problem.textContent = error.message; return;
  }
  const here = filePath(session.workspace, sub);
  const body = el("tbody");
  const viewer = el("div", { "aria-live": "polite" });
  const upload = el("input", { id: "upload", type: "file" });
  const urls = [];
  const link = (name) => `#/files/${encodeURIComponent(sessionId)}/${filePath(sub, name)}`;
  const load = async () => {
    try {
      const listing = await api(`/v1/files/${here}`);
      body.replaceChildren(...listing.entries.map((entry) => {
        const path = filePath(session.workspace, sub, entry.name);
        const view = async () => {
          try {
            const blob = await fetchBlob(path);
            if (blob.type.startsWith("image/")) {
              const url = URL.createObjectURL(blob);
              urls.push(url);
              viewer.replaceChildren(el("h2", { text: entry.name }),
                                     el("img", { class: "shown", src: url, alt: entry.name }));
            } else {
              viewer.replaceChildren(el("h2", { text: entry.name }),
                                     el("pre", { class: "card", text: await blob.text() }));
            }
          } catch (error) { problem.textContent = error.message; }
        };
        const download = async () => {
          try {
            const url = URL.createObjectURL(await fetchBlob(path));
            const anchor = el("a", { href: url, download: entry.name });
            document.body.append(anchor);
            anchor.click();
            anchor.remove();
            setTimeout(() => URL.revokeObjectURL(url), 60_000);
          } catch (error) { problem.textContent = error.message; }
        };
        const remove = async () => {
          if (!confirm(`Delete ${entry.name}?`)) return;
          try {
            await api(`/v1/files/${path}${entry.type === "dir" ? "?recursive=true" : ""}`,
                      { method: "DELETE" });
            await load();
          } catch (error) { problem.textContent = error.message; }
        };
        return el("tr", {},
          el("td", {}, entry.type === "dir"
            ? el("a", { href: link(entry.name), text: `${entry.name}/` })
            : el("button", { type: "button", class: "link", text: entry.name, onclick: view })),
          el("td", { text: entry.type === "dir" ? "" : `${entry.size} B` }),
          el("td", {}, entry.type === "dir" ? null
            : el("button", { type: "button", text: "Download", "aria-label": `Download ${entry.name}`,
                             onclick: download }),
             el("button", { type: "button", class: "danger", text: "Delete",
                            "aria-label": `Delete ${entry.name}`, onclick: remove })));
      }));
      if (!listing.entries.length) {
        body.append(el("tr", {}, el("td", { colspan: 3, class: "muted", text: "Empty." })));
      }
    } catch (error) { problem.textContent = error.message; }
  };
  upload.onchange = async () => {
    for (const file of upload.files) {
      const headers = key() ? { Authorization: `Bearer ${key()}` } : {};
      const response = await fetch(`/v1/files/${filePath(session.workspace, sub, file.name)}`,
                                   { method: "PUT", headers, body: file });
      if (!response.ok) {
        problem.textContent = new ApiError(response.status,
                                           await response.json().catch(() => null)).message;
      }
    }
    upload.value = "";
    await load();
  };
  const crumbs = [el("a", { href: `#/session/${encodeURIComponent(sessionId)}`,
                            text: session.workspace || session.id })];
  let walked = "";
  for (const part of (sub || "").split("/").filter((p) => p)) {
    walked = walked ? `${walked}/${part}` : part;
    crumbs.push(" / ", el("a", { href: `#/files/${encodeURIComponent(sessionId)}/${filePath(walked)}`,
                                 text: part }));
  }
  show(el("h1", { text: "Files" }), el("p", {}, crumbs), problem,
       el("div", { class: "bar" }, el("label", { for: "upload", text: "Upload" }), upload),
       el("table", {}, el("thead", {}, el("tr", {}, ["Name", "Size", ""].map((h) => el("th", { text: h })))),
          body),
       viewer);
  view = { stop: () => urls.forEach((url) => URL.revokeObjectURL(url)) };
  await load();
}

// -- events inspector -----------------------------------------------------------------
async function eventsScreen(sessionId) {
  nav.hidden = false;
  const problem = el("p", { class: "error", role: "alert" });
  const from = el("input", { id: "from-seq", type: "number", min: 0, value: 0, size: 8 });
  const live = el("input", { id: "follow", type: "checkbox", checked: true });
  const body = el("tbody");
  let stop = () => {};
  const row = (e) => el("tr", { class: "event" },
    el("td", { text: e.seq }), el("td", { text: e.type }), el("td", { text: e.turnId || "" }),
    el("td", {}, el("pre", { text: JSON.stringify(e.data, null, 2) })));
  const load = async () => {
    stop();
    stop = () => {};
    body.replaceChildren();
    let after = Math.max(0, Number(from.value) - 1 || 0);
    try {
      for (;;) {
        const page = await api(`/v1/sessions/${encodeURIComponent(sessionId)}/events?after=${after}&follow=false&limit=500`);
        body.append(...page.events.map(row));
        if (!page.events.length) break;
        after = page.events[page.events.length - 1].seq;
        if (page.events.length < 500) break;
      }
      problem.textContent = "";
    } catch (error) { problem.textContent = error.message; return; }
    if (live.checked) {
      stop = follow(sessionId, (e) => { if (e.seq) body.append(row(e)); }, after);
    }
  };
  from.addEventListener("change", load);
  live.addEventListener("change", load);
  show(el("h1", { text: "Events" }),
       el("p", {}, el("a", { href: `#/session/${encodeURIComponent(sessionId)}`, text: "Back to the session" })),
       el("div", { class: "bar" },
          el("label", { for: "from-seq", text: "From seq" }), from,
          live, el("label", { for: "follow", text: "Follow live" })),
       problem,
       el("table", {}, el("thead", {}, el("tr", {}, ["seq", "type", "turn", "data"].map((h) => el("th", { text: h })))),
          body));
  view = { stop: () => stop() };
  await load();
}


// -- admin ----------------------------------------------------------------------------
async function adminScreen() {
  nav.hidden = false;
  const problem = el("p", { class: "error", role: "alert" });
  const pool = el("p");
  const byStatus = el("p", { class: "muted" });
  const usageBody = el("tbody");
  const keysBody = el("tbody");
  const shown = el("div", { "aria-live": "polite" });
  const name = el("input", { id: "key-name", required: true });
  const isAdmin = el("input", { id: "key-admin", type: "checkbox" });
  const limit = el("input", { id: "key-limit", placeholder: "60/minute" });
  const load = async () => {
    try {
      const [status, usage, keys] = await Promise.all([
        api("/v1/status"), api("/v1/admin/usage"), api("/v1/admin/keys")]);
      pool.textContent = `CLI processes: ${status.processes.live} of ${status.processes.max}`
        + (status.spares ? ` · spares: ${JSON.stringify(status.spares)}` : "");
      byStatus.textContent = Object.entries(status.sessions).filter(([, n]) => n)
        .map(([s, n]) => `${s}: ${n}`).join(" · ") || "No sessions.";
      usageBody.replaceChildren(...usage.keys.map((k) => el("tr", {},
        el("td", { text: k.name }), el("td", { text: money(k.spentTodayUsd) }),
        el("td", { text: usage.dailyBudgetUsd ? money(usage.dailyBudgetUsd) : "no budget" }),
        el("td", { text: k.openSessions }))));
      keysBody.replaceChildren(...keys.keys.map((k) => el("tr", {},
        el("td", { text: k.name }), el("td", { text: k.prefix ? `${k.prefix}…` : "(settings)" }),
        el("td", { text: k.admin ? "admin" : "" }), el("td", { text: k.rateLimit || "" }),
        el("td", { text: k.revokedAt ? `revoked ${when(k.revokedAt)}` : "active" }),
        el("td", {}, k.source === "database" && !k.revokedAt
          ? el("button", { type: "button", class: "danger", text: "Revoke",
                           "aria-label": `Revoke ${k.name}`, onclick: async () => {
              if (!confirm(`Revoke ${k.name}? Its holder is refused from now on.`)) return;
              try { await api(`/v1/admin/keys/${encodeURIComponent(k.name)}`, { method: "DELETE" }); }
              catch (error) { problem.textContent = error.message; }
              await load();
            } }) : null))));
      problem.textContent = "";
    } catch (error) { problem.textContent = error.message; }
  };
  const create = el("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const made = await api("/v1/admin/keys", { method: "POST", body: {
        name: name.value.trim(), admin: isAdmin.checked,
        rateLimit: limit.value.trim() || undefined } });
      shown.replaceChildren(el("div", { class: "card banner" },
        el("p", { text: `The key for ${made.name} (shown once, copy it now):` }),
        el("code", { class: "new-key", text: made.key })));
      name.value = ""; limit.value = ""; isAdmin.checked = false;
      await load();
    } catch (error) { problem.textContent = error.message; }
  } },
  el("h2", { text: "Create a key" }),
  el("label", { for: "key-name", text: "Name" }), name,
  el("label", { for: "key-limit", text: "Rate limit" }), limit,
  el("div", { class: "bar" }, isAdmin, el("label", { for: "key-admin", text: "Admin" })),
  el("div", { class: "bar" }, el("button", { type: "submit", class: "primary", text: "Create key" })));
  show(el("h1", { text: "Admin" }), problem, pool, byStatus,
       el("h2", { text: "Usage today" }),
       el("table", {}, el("thead", {}, el("tr", {}, ["Key", "Spent", "Budget", "Open sessions"]
         .map((h) => el("th", { text: h })))), usageBody),
       el("h2", { text: "API keys" }), shown,
       el("table", {}, el("thead", {}, el("tr", {}, ["Name", "Prefix", "Role", "Rate limit", "State", ""]
         .map((h) => el("th", { text: h })))), keysBody),
       create);
  await load();
}

// -- approvals ------------------------------------------------------------------------
async function approvalsScreen() {
  nav.hidden = false;
  const list = el("div");
  const problem = el("p", { class: "error", role: "alert" });
  const load = async () => {
    try {
      const { permissions } = await api("/v1/permissions");
      list.replaceChildren(...permissions.map((p) => el("div", {},
        el("a", { href: `#/session/${p.sessionId}`, text: `Session ${p.sessionId}` }),
        el("span", { class: "muted", text: ` · ${when(p.createdAt)}` }),
        permissionBanner(p.sessionId, p, problem, load))));
      if (!permissions.length) list.append(el("p", { class: "muted", text: "Nothing is waiting for an answer." }));
    } catch (error) { problem.textContent = error.message; }
  };
  show(el("h1", { text: "Approvals" }), problem, list);
  await load();
  const timer = setInterval(load, 3000);
  view = { stop: () => clearInterval(timer) };
}

// -- routing --------------------------------------------------------------------------
async function showAdminLink() {
  let admin = false;
  try { admin = Boolean((await api("/v1/status")).caller.admin); } catch (error) { admin = false; }
  document.getElementById("admin-link").hidden = !admin;
}

async function route() {
  try {
    if (!(await signedIn())) { signInScreen(); return; }
    showAdminLink();
  } catch (error) {
    show(el("p", { class: "error", role: "alert", text: error.message }));
    return;
  }
  const hash = location.hash || "#/sessions";
  const [, screen, id] = hash.split("/");
  const rest = hash.split("/").slice(3).map(decodeURIComponent).join("/");
  if (screen === "session" && id) await sessionScreen(decodeURIComponent(id));
  else if (screen === "files" && id) await filesScreen(decodeURIComponent(id), rest);
  else if (screen === "events" && id) await eventsScreen(decodeURIComponent(id));
  else if (screen === "approvals") await approvalsScreen();
  else if (screen === "admin") await adminScreen();
  else await sessionsScreen();
  main.focus({ preventScroll: true });
}

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  location.hash = "#/sessions";
  signInScreen();
});
window.addEventListener("hashchange", route);
route();
