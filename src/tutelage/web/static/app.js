// tutelage workspace: the JSON API helper and the keyboard-help overlay.
// Loaded from /static only: the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  class ApiError extends Error {
    constructor(status, code, message, body) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = code;
      this.body = body;
    }
  }

  // api("/api/v1/me") or api(path, {method: "POST", body: {...}, idempotencyKey: "..."}):
  // sends JSON with the session's CSRF token; resolves to the parsed answer (null for 204),
  // rejects with an ApiError carrying the server's {"error", "message"}.
  async function api(path, options) {
    const opts = options || {};
    const method = (opts.method || (opts.body === undefined ? "GET" : "POST")).toUpperCase();
    const headers = new Headers(opts.headers || {});
    headers.set("Accept", "application/json");
    if (opts.body !== undefined) headers.set("Content-Type", "application/json");
    const token = csrfToken();
    if (token && method !== "GET" && method !== "HEAD") headers.set("X-CSRF-Token", token);
    if (opts.idempotencyKey) headers.set("Idempotency-Key", opts.idempotencyKey);
    const response = await fetch(path, {
      method: method,
      headers: headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      credentials: "same-origin",
      signal: opts.signal,
    });
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (err) {
        data = { error: "not_json", message: text.slice(0, 200) };
      }
    }
    if (!response.ok) {
      const code = data && data.error ? data.error : "http_" + response.status;
      const message = data && data.message ? data.message : response.statusText;
      throw new ApiError(response.status, code, message, data);
    }
    return data;
  }

  // The JSON a page passes to its script through {{ page_data }}, or null.
  function pageData() {
    const block = document.getElementById("page-data");
    return block ? JSON.parse(block.textContent) : null;
  }

  function newIdempotencyKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // --- Keyboard help: "?" toggles a list of the keys declared in <body data-keys='{...}'>.

  function declaredKeys() {
    let keys = {};
    try {
      keys = JSON.parse(document.body.dataset.keys || "{}") || {};
    } catch (err) {
      keys = {};
    }
    return Object.assign({}, keys, { "?": "show or hide this help", Esc: "close this help" });
  }

  let overlay = null;
  let keyList = null;

  function buildOverlay() {
    overlay = document.createElement("div");
    overlay.className = "keys-overlay";
    overlay.hidden = true;
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", "Keyboard shortcuts");
    const panel = document.createElement("div");
    panel.className = "keys-panel";
    const heading = document.createElement("h2");
    heading.textContent = "Keyboard shortcuts";
    panel.appendChild(heading);
    keyList = document.createElement("dl");
    panel.appendChild(keyList);
    overlay.appendChild(panel);
    overlay.addEventListener("click", function (event) {
      if (event.target === overlay) toggleHelp(false);
    });
    document.body.appendChild(overlay);
  }

  // Filled each time it opens: a page may change its keys (the work page, per task kind).
  function fillKeyList() {
    const rows = [];
    for (const [key, description] of Object.entries(declaredKeys())) {
      const term = document.createElement("dt");
      const kbd = document.createElement("kbd");
      kbd.textContent = key;
      term.appendChild(kbd);
      const detail = document.createElement("dd");
      detail.textContent = String(description);
      rows.push(term, detail);
    }
    keyList.replaceChildren(...rows);
  }

  function toggleHelp(show) {
    if (!overlay) buildOverlay();
    overlay.hidden = show === undefined ? !overlay.hidden : !show;
    if (!overlay.hidden) fillKeyList();
  }

  // Keys type text in text fields; radio buttons and checkboxes leave them to shortcuts.
  function typing(target) {
    if (!target || !(target instanceof Element)) return false;
    return target.matches(
      'textarea, select, [contenteditable], input:not([type="radio"]):not([type="checkbox"])' +
        ':not([type="button"]):not([type="submit"])'
    );
  }

  // A page declares a shortcut on a link or button with data-key="m": pressing m clicks it.
  function shortcut(key) {
    for (const element of document.querySelectorAll("[data-key]")) {
      if (element.dataset.key === key && element.getClientRects().length > 0) return element;
    }
    return null;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
    } else if (event.key === "Escape" && overlay && !overlay.hidden) {
      toggleHelp(false);
    } else if (!event.defaultPrevented && (!overlay || overlay.hidden)) {
      const element = shortcut(event.key);
      if (element) {
        event.preventDefault();
        element.click();
      }
    }
  });

  window.tutelage = Object.freeze({
    api: api,
    ApiError: ApiError,
    csrfToken: csrfToken,
    pageData: pageData,
    newIdempotencyKey: newIdempotencyKey,
    toggleHelp: toggleHelp,
  });
})();
