// The work page: every decision has a key, items follow one another without a page load,
// active time is measured here, and a submit is stored once however often it is retried.
//
// The server renders the first item; later ones are rendered here from the JSON API with
// the page's <template> elements. Model output enters the page only from the API's `html`
// fields, which the server has sanitised; all other text goes in through textContent.
(function () {
  "use strict";

  const tutelage = window.tutelage;
  const data = tutelage.pageData();
  const root = document.getElementById("task-root");
  if (!data || !root) return;

  const projectId = data.project_id;
  const errorBox = document.getElementById("task-error");
  const actions = document.getElementById("task-actions");
  const submitButton = document.getElementById("submit-button");
  const skipButton = document.getElementById("skip-button");
  const skipForm = document.getElementById("skip-form");
  const skipReason = document.getElementById("skip-reason");
  const clockOutput = document.getElementById("active-time");

  const IDLE_MS = 2 * 60 * 1000; // active time stops this long after the last input
  const COMMON_KEYS = {
    s: "submit",
    x: "skip this item (asks why)",
    Esc: "leave a text field",
    "Ctrl+Enter": "submit from a text field",
  };
  const KIND_KEYS = {
    comparison: {
      1: "A is better",
      2: "B is better",
      3: "tie",
      4: "both bad",
      "q / w / e": "slightly / clearly / decisively",
      c: "score the criteria (arrow keys change a score, Tab moves on)",
      r: "write the rationale",
    },
    ranking: {
      "a, b, c, …": "pick that answer",
      "j or ↓": "move it down",
      "k or ↑": "move it up",
      r: "write the rationale",
    },
    rating: {
      "0-9": "score the highlighted criterion and go to the next",
      "j or ↓": "next criterion",
      "k or ↑": "previous criterion",
      r: "write the rationale",
    },
    rewrite: { "1, 2, …": "choose the answer to edit", e: "edit the text" },
    flag: {
      f: "find text (Enter selects it; Enter again, the next one)",
      n: "write a note for the next mark",
      h: "mark the selection as a hallucination",
      u: "mark it as unsafe",
      o: "mark it as outdated",
      t: "mark it as other (needs a note)",
      z: "remove the last flag",
    },
    redteam: { e: "write the prompt", r: "write the rationale" },
  };
  const RANKING_RESERVED = new Set(["j", "k", "r", "s", "x"]);

  let task = null; // the task view shown, as the API sends it; null when all is done
  let submitted = false; // its judgment is stored: only moving on is left
  let busy = false;
  let state = {}; // what the expert has done on this item, per kind

  // --- Small helpers

  function $(selector) {
    return root.querySelector(selector);
  }

  function $$(selector) {
    return Array.from(root.querySelectorAll(selector));
  }

  function slot(name) {
    return $('[data-slot="' + name + '"]');
  }

  function storageKey(name, assignmentId) {
    return "tutelage:" + name + ":" + assignmentId;
  }

  function recall(name, assignmentId) {
    try {
      return window.sessionStorage.getItem(storageKey(name, assignmentId));
    } catch (err) {
      return null;
    }
  }

  function remember(name, assignmentId, value) {
    try {
      window.sessionStorage.setItem(storageKey(name, assignmentId), value);
    } catch (err) {
      // Private windows may refuse storage; the page still works, only retries lose it.
    }
  }

  function forget(assignmentId) {
    try {
      window.sessionStorage.removeItem(storageKey("idempotency", assignmentId));
      window.sessionStorage.removeItem(storageKey("active", assignmentId));
    } catch (err) {
      // as above
    }
  }

  // One key per assignment attempt, kept across retries and reloads of the page.
  function idempotencyKey(assignmentId) {
    let key = recall("idempotency", assignmentId);
    if (!key) {
      key = tutelage.newIdempotencyKey();
      remember("idempotency", assignmentId, key);
    }
    return key;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function hideError() {
    errorBox.hidden = true;
    errorBox.textContent = "";
  }

  function describe(err, what) {
    if (err instanceof tutelage.ApiError) return what + ": " + err.message;
    return what + ": the server could not be reached. Your work is still here.";
  }

  function isTextField(element) {
    return (
      element instanceof Element &&
      element.matches(
        'textarea, select, [contenteditable], input:not([type="radio"]):not([type="checkbox"])' +
          ':not([type="button"]):not([type="submit"])'
      )
    );
  }

  function helpOpen() {
    const overlay = document.querySelector(".keys-overlay");
    return Boolean(overlay && !overlay.hidden);
  }

  function focusField(name) {
    const field = slot(name);
    if (!field) return false;
    field.focus();
    if (typeof field.setSelectionRange === "function" && field.type !== "search") {
      field.setSelectionRange(field.value.length, field.value.length);
    }
    return true;
  }

  function check(name, value) {
    const input = $('input[name="' + name + '"][value="' + value + '"]');
    if (!input) return false;
    input.checked = true;
    return true;
  }

  function checked(name) {
    const input = $('input[name="' + name + '"]:checked');
    return input ? input.value : null;
  }

  // --- Active time: seconds while the tab is visible and the expert used it lately.

  const clock = {
    activeMs: 0,
    lastTick: 0,
    lastActivity: 0,
    visible: document.visibilityState === "visible",
    accrue() {
      const now = performance.now();
      if (this.visible) {
        const until = Math.min(now, this.lastActivity + IDLE_MS);
        if (until > this.lastTick) this.activeMs += until - this.lastTick;
      }
      this.lastTick = now;
    },
    activity() {
      this.accrue();
      this.lastActivity = this.lastTick;
    },
    start(activeMs) {
      this.activeMs = activeMs;
      this.lastTick = this.lastActivity = performance.now();
    },
    seconds() {
      this.accrue();
      return this.activeMs / 1000;
    },
  };

  function saveClock() {
    if (task) remember("active", task.assignment_id, String(clock.seconds() * 1000));
  }

  for (const name of ["keydown", "mousedown", "mousemove", "wheel", "touchstart", "scroll", "input"]) {
    document.addEventListener(name, () => clock.activity(), { capture: true, passive: true });
  }
  document.addEventListener("visibilitychange", function () {
    clock.accrue();
    clock.visible = document.visibilityState === "visible";
    if (clock.visible) clock.activity();
    else saveClock();
  });
  window.addEventListener("pagehide", saveClock);
  window.setInterval(function () {
    if (!task) return;
    const total = Math.floor(clock.seconds());
    clockOutput.textContent = Math.floor(total / 60) + ":" + String(total % 60).padStart(2, "0");
  }, 1000);

  // --- Rendering an item from the API's JSON, with the page's templates

  function clone(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  function fill(node, values) {
    for (const element of [node, ...node.querySelectorAll("[data-field]")]) {
      const field = element.dataset.field;
      if (!field || !(field in values)) continue;
      if (field === "html") element.innerHTML = values.html; // sanitised by the server
      else element.textContent = values[field];
    }
  }

  function renderTask(view) {
    const node = clone("tpl-" + view.kind);
    node.dataset.assignment = String(view.assignment_id);
    const conversation = node.querySelector('[data-slot="conversation"]');
    for (const message of view.conversation) {
      const turn = clone("tpl-message");
      turn.dataset.role = message.role;
      fill(turn, { role: message.role, html: message.html });
      if (conversation) conversation.appendChild(turn);
    }
    const answers = node.querySelector('[data-slot="answers"]');
    view.answers.forEach(function (answer, index) {
      const card = clone("tpl-answer-" + view.kind);
      card.dataset.letter = answer.letter;
      fill(card, {
        letter: answer.letter,
        html: answer.html,
        text: answer.text,
        key: answer.letter.toLowerCase(),
        number: String(index + 1),
      });
      for (const input of card.querySelectorAll("[data-letter-value]")) input.value = answer.letter;
      if (answers) answers.appendChild(card);
    });
    root.replaceChildren(node);
  }

  // Make the item in #task-root (rendered by the server or by renderTask) the current one.
  function show(view) {
    task = view;
    submitted = false;
    busy = false;
    state = {};
    submitButton.disabled = false;
    actions.hidden = false;
    hideError();
    closeSkip();
    clock.start(Number(recall("active", view.assignment_id)) || 0);
    const conversation = slot("conversation");
    if (conversation) conversation.hidden = view.conversation.length === 0;
    document.body.dataset.keys = JSON.stringify(
      Object.assign({}, KIND_KEYS[view.kind], COMMON_KEYS)
    );
    SETUP[view.kind]();
    if (document.activeElement instanceof HTMLElement && !root.contains(document.activeElement)) {
      document.activeElement.blur();
    }
  }

  function showDone() {
    task = null;
    root.replaceChildren(clone("tpl-done"));
    actions.hidden = true;
    document.body.dataset.keys = "{}";
  }

  // --- Per kind: set-up, keys, and the body to submit (or a message saying what is missing)

  const SETUP = {
    comparison() {},
    ranking() {
      updateRanks();
      const first = $(".rank-item");
      if (first) select(first, false);
    },
    rating() {
      state.current = 0;
      highlightCriterion();
    },
    rewrite() {
      state.base = task.answers.length ? task.answers[0].letter : "A";
      check("base", state.base);
      slot("rewrite").value = baseText();
      updateDiff();
    },
    flag() {
      state.flags = [];
      state.found = null;
      state.pendingOther = null;
      // The text from the JSON, not the parsed HTML: HTML parsing drops a leading newline
      // and turns CR LF into LF, and span offsets count characters of the raw text.
      for (const pre of $$(".flag-text")) pre.textContent = answerOf(pre).text;
      renderFlags();
    },
    redteam() {},
  };

  const KEYS = {
    comparison(key) {
      const choice = { 1: "a", 2: "b", 3: "tie", 4: "both_bad" }[key];
      if (choice) return check("choice", choice);
      const strength = { q: "slight", w: "clear", e: "decisive" }[key];
      if (strength) return check("strength", strength);
      if (key === "c") {
        const first = $(".criterion input:checked") || $(".criterion input");
        if (first) first.focus();
        return Boolean(first);
      }
      if (key === "r") return focusField("rationale");
      return false;
    },
    ranking(key) {
      if (key === "j" || key === "ArrowDown") return moveSelected(1);
      if (key === "k" || key === "ArrowUp") return moveSelected(-1);
      if (key === "r") return focusField("rationale");
      if (/^[a-z]$/.test(key) && !RANKING_RESERVED.has(key)) {
        const item = $('.rank-item[data-letter="' + key.toUpperCase() + '"]');
        if (item) select(item, true);
        return Boolean(item);
      }
      return false;
    },
    rating(key) {
      if (key === "j" || key === "ArrowDown") return moveCriterion(1);
      if (key === "k" || key === "ArrowUp") return moveCriterion(-1);
      if (key === "r") return focusField("rationale");
      if (/^[0-9]$/.test(key)) return scoreCurrent(key);
      return false;
    },
    rewrite(key) {
      if (key === "e") return focusField("rewrite");
      if (/^[1-9]$/.test(key)) return chooseBase(Number(key) - 1);
      return false;
    },
    flag(key) {
      if (key === "f") return focusField("find");
      if (key === "n") return focusField("note");
      if (key === "Enter" && slot("find").value) {
        findNext(slot("find").value);
        return true;
      }
      const kind = { h: "hallucination", u: "unsafe", o: "outdated", t: "other" }[key];
      if (kind) {
        markSelection(kind);
        return true;
      }
      if (key === "z") {
        removeFlag(state.flags.length - 1);
        return true;
      }
      return false;
    },
    redteam(key) {
      if (key === "e") return focusField("prompt");
      if (key === "r") return focusField("rationale");
      return false;
    },
  };

  function rationale() {
    const field = slot("rationale");
    return field ? field.value.trim() : "";
  }

  function missingRationale(text) {
    return task.rationale_required && !text
      ? "This project asks for a written rationale: press r and write it."
      : null;
  }

  function scores() {
    const found = {};
    $$(".criterion").forEach(function (criterion, index) {
      const value = checked("criterion-" + index);
      if (value !== null) found[criterion.dataset.criterion] = Number(value);
    });
    return found;
  }

  const BUILD = {
    comparison() {
      const choice = checked("choice");
      if (!choice) return "Choose first: 1 (A), 2 (B), 3 (tie) or 4 (both bad).";
      const text = rationale();
      return (
        missingRationale(text) || {
          choice: choice,
          strength: checked("strength"),
          criteria: scores(),
          rationale: text,
        }
      );
    },
    ranking() {
      const text = rationale();
      return (
        missingRationale(text) || {
          order: $$(".rank-item").map((item) => item.dataset.letter),
          rationale: text,
        }
      );
    },
    rating() {
      const total = $$(".criterion").length;
      if (!total) return "This project has no rubric to rate against: skip the item (x).";
      const given = scores();
      if (Object.keys(given).length < total) {
        return "Score every criterion first: number keys, j and k to move.";
      }
      const text = rationale();
      return missingRationale(text) || { scores: given, rationale: text };
    },
    rewrite() {
      const text = slot("rewrite").value;
      if (!text.trim()) return "The rewrite is empty: press e and write what the answer should say.";
      if (text === baseText()) return "You have not changed the answer yet: press e to edit it.";
      return { base: state.base, text: text };
    },
    flag() {
      return {
        flags: state.flags.map((f) => ({
          answer: f.answer,
          start: f.start,
          end: f.end,
          flag: f.flag,
          note: f.note,
        })),
      };
    },
    redteam() {
      const prompt = slot("prompt").value.trim();
      if (!prompt) return "Write the prompt first: press e.";
      return { prompt: prompt, rationale: rationale() };
    },
  };

  // --- Ranking

  function updateRanks() {
    $$(".rank-item").forEach(function (item, index) {
      item.querySelector(".rank-pos").textContent = index + 1 + ".";
    });
  }

  function select(item, focus) {
    for (const other of $$(".rank-item.selected")) other.classList.remove("selected");
    item.classList.add("selected");
    state.selected = item;
    if (focus && document.activeElement !== item) item.focus();
  }

  function moveSelected(step) {
    const item = state.selected;
    if (!item || !item.isConnected) return false;
    const list = item.parentElement;
    // Move the neighbour rather than the item, so the item keeps the keyboard focus.
    if (step < 0 && item.previousElementSibling) {
      list.insertBefore(item.previousElementSibling, item.nextElementSibling);
    } else if (step > 0 && item.nextElementSibling) {
      list.insertBefore(item.nextElementSibling, item);
    }
    updateRanks();
    item.scrollIntoView({ block: "nearest" });
    return true;
  }

  root.addEventListener("dragstart", function (event) {
    const item = event.target instanceof Element ? event.target.closest(".rank-item") : null;
    if (!item) return;
    state.dragged = item;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.dataset.letter);
  });
  root.addEventListener("dragover", function (event) {
    if (state.dragged && event.target instanceof Element && event.target.closest(".rank-item")) {
      event.preventDefault();
    }
  });
  root.addEventListener("drop", function (event) {
    const over = event.target instanceof Element ? event.target.closest(".rank-item") : null;
    const dragged = state.dragged;
    if (!dragged || !over || over === dragged) return;
    event.preventDefault();
    const box = over.getBoundingClientRect();
    const after = event.clientY > box.top + box.height / 2;
    over.parentElement.insertBefore(dragged, after ? over.nextElementSibling : over);
    select(dragged, true);
    updateRanks();
  });
  root.addEventListener("dragend", function () {
    state.dragged = null;
  });

  // --- Rubric scores (rating)

  function highlightCriterion() {
    $$(".criterion").forEach(function (criterion, index) {
      criterion.classList.toggle("current", index === state.current);
    });
  }

  function moveCriterion(step) {
    const count = $$(".criterion").length;
    if (!count) return false;
    state.current = Math.max(0, Math.min(count - 1, state.current + step));
    highlightCriterion();
    return true;
  }

  function scoreCurrent(digit) {
    const criteria = $$(".criterion");
    const criterion = criteria[state.current];
    if (!criterion) return false;
    const input = criterion.querySelector('input[value="' + digit + '"]');
    if (!input) {
      showError(criterion.dataset.criterion + " has no score " + digit + ".");
      return true;
    }
    hideError();
    input.checked = true;
    if (state.current < criteria.length - 1) moveCriterion(1);
    return true;
  }

  // --- Rewrite, with a word-level diff of the chosen answer and the edit

  function baseText() {
    const answer = task.answers.find((a) => a.letter === state.base);
    return answer ? answer.text : "";
  }

  function chooseBase(index) {
    const answer = task.answers[index];
    if (!answer) return false;
    if (answer.letter === state.base) return true;
    const area = slot("rewrite");
    if (area.value !== baseText() && state.confirmBase !== answer.letter) {
      state.confirmBase = answer.letter;
      check("base", state.base);
      showError(
        "You have edited answer " + state.base + ". Choose answer " + answer.letter +
          " again (" + (index + 1) + ") to drop your edit and start from it."
      );
      return true;
    }
    state.confirmBase = null;
    hideError();
    state.base = answer.letter;
    check("base", answer.letter);
    area.value = answer.text;
    updateDiff();
    return true;
  }

  function tokens(text) {
    return text.match(/\s+|\S+/g) || [];
  }

  // Returns [op, text] runs, op "eq", "del" or "ins": the longest common subsequence of
  // words and spaces, after trimming the common start and end (most text, in an edit).
  function wordDiff(before, after) {
    const a = tokens(before);
    const b = tokens(after);
    let head = 0;
    while (head < a.length && head < b.length && a[head] === b[head]) head++;
    let tail = 0;
    while (
      tail < a.length - head &&
      tail < b.length - head &&
      a[a.length - 1 - tail] === b[b.length - 1 - tail]
    ) {
      tail++;
    }
    const x = a.slice(head, a.length - tail);
    const y = b.slice(head, b.length - tail);
    const runs = [["eq", a.slice(0, head).join("")]];
    if (x.length * y.length > 4000000) {
      runs.push(["del", x.join("")], ["ins", y.join("")]);
    } else {
      const width = y.length + 1;
      const common = new Uint32Array((x.length + 1) * width); // common[i][j]: LCS of x[i:], y[j:]
      for (let i = x.length - 1; i >= 0; i--) {
        for (let j = y.length - 1; j >= 0; j--) {
          common[i * width + j] =
            x[i] === y[j]
              ? common[(i + 1) * width + j + 1] + 1
              : Math.max(common[(i + 1) * width + j], common[i * width + j + 1]);
        }
      }
      let i = 0;
      let j = 0;
      while (i < x.length || j < y.length) {
        if (i < x.length && j < y.length && x[i] === y[j]) {
          runs.push(["eq", x[i++]]);
          j++;
        } else if (
          i < x.length &&
          (j === y.length || common[(i + 1) * width + j] >= common[i * width + j + 1])
        ) {
          runs.push(["del", x[i++]]);
        } else {
          runs.push(["ins", y[j++]]);
        }
      }
    }
    runs.push(["eq", a.slice(a.length - tail).join("")]);
    return grouped(runs.filter(([, text]) => text));
  }

  // One deletion then one insertion per changed stretch: spaces between changed words
  // belong to the change, so "worry about." -> "as the expert" reads as a single edit.
  function grouped(runs) {
    const out = [];
    let removed = "";
    let added = "";
    function flush() {
      if (removed) out.push(["del", removed]);
      if (added) out.push(["ins", added]);
      removed = added = "";
    }
    runs.forEach(function ([op, text], index) {
      const next = runs[index + 1];
      const inChange = removed || added;
      if (op === "eq" && inChange && /^\s+$/.test(text) && next && next[0] !== "eq") {
        removed += text;
        added += text;
      } else if (op === "del") {
        removed += text;
      } else if (op === "ins") {
        added += text;
      } else {
        flush();
        const last = out[out.length - 1];
        if (last && last[0] === "eq") last[1] += text;
        else out.push(["eq", text]);
      }
    });
    flush();
    return out;
  }

  function updateDiff() {
    const box = slot("diff");
    if (!box) return;
    let added = 0;
    let removed = 0;
    const nodes = wordDiff(baseText(), slot("rewrite").value).map(function ([op, text]) {
      if (op === "eq") {
        // Long unchanged stretches are shortened, so the changes stand out.
        const shown = text.length > 240 ? text.slice(0, 100) + " … " + text.slice(-100) : text;
        return document.createTextNode(shown);
      }
      const words = (text.match(/\S+/g) || []).length;
      if (op === "ins") added += words;
      else removed += words;
      const element = document.createElement(op);
      element.textContent = text;
      return element;
    });
    box.replaceChildren(...nodes);
    slot("diff-summary").textContent =
      added || removed ? "(+" + added + " words, −" + removed + " words)" : "(none yet)";
  }

  let diffTimer = 0;
  root.addEventListener("input", function (event) {
    if (event.target !== slot("rewrite")) return;
    window.clearTimeout(diffTimer);
    diffTimer = window.setTimeout(updateDiff, 120);
  });

  // --- Flags: spans are character offsets into the answer's raw text

  function answerOf(element) {
    const letter = element.closest("[data-letter]").dataset.letter;
    return task.answers.find((a) => a.letter === letter);
  }

  function offsetIn(pre, node, offset) {
    const range = document.createRange();
    range.selectNodeContents(pre);
    range.setEnd(node, offset);
    return range.toString().length;
  }

  function spanFromSelection() {
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return null;
    const range = selection.getRangeAt(0);
    for (const pre of $$(".flag-text")) {
      if (!range.intersectsNode(pre)) continue;
      const length = pre.textContent.length;
      const start = pre.contains(range.startContainer)
        ? offsetIn(pre, range.startContainer, range.startOffset)
        : 0;
      const end = pre.contains(range.endContainer)
        ? offsetIn(pre, range.endContainer, range.endOffset)
        : length;
      if (end > start) return { answer: answerOf(pre).letter, start: start, end: end };
    }
    return null;
  }

  function selectSpan(pre, start, end) {
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    let seen = 0;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const length = node.data.length;
      if (seen <= start && start <= seen + length) range.setStart(node, start - seen);
      if (seen <= end && end <= seen + length) {
        range.setEnd(node, end - seen);
        break;
      }
      seen += length;
    }
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    pre.scrollIntoView({ block: "nearest" });
  }

  function flagStatus(message) {
    slot("flag-status").textContent = message;
  }

  function findNext(query) {
    const hits = [];
    const needle = query.toLowerCase();
    for (const pre of $$(".flag-text")) {
      const text = pre.textContent;
      const hay = text.toLowerCase();
      // Case-insensitive unless lower-casing changes lengths (then offsets would be wrong).
      const exact = hay.length !== text.length || needle.length !== query.length;
      const source = exact ? text : hay;
      const sought = exact ? query : needle;
      for (let at = source.indexOf(sought); at !== -1; at = source.indexOf(sought, at + 1)) {
        hits.push({ pre: pre, start: at, end: at + query.length });
      }
    }
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
    if (!hits.length) {
      state.found = null;
      flagStatus("“" + query + "” is not in the answer.");
      return;
    }
    const index = state.found && state.found.query === query ? (state.found.index + 1) % hits.length : 0;
    const hit = hits[index];
    state.found = {
      query: query,
      index: index,
      span: { answer: answerOf(hit.pre).letter, start: hit.start, end: hit.end },
    };
    selectSpan(hit.pre, hit.start, hit.end);
    flagStatus(
      "Selected “" + query + "” (" + (index + 1) + " of " + hits.length + "). Mark it with " +
        "h, u, o or t; Enter selects the next."
    );
  }

  function markSelection(kind) {
    const span = spanFromSelection() || (state.found && state.found.span);
    if (!span) {
      flagStatus("Select some text first: with the mouse, or press f and find it.");
      return;
    }
    const note = slot("note").value.trim();
    if (kind === "other" && !note) {
      state.pendingOther = span;
      flagStatus("Say in the note what is wrong, then press Enter.");
      focusField("note");
      return;
    }
    addFlag(span, kind, note);
  }

  function noteEntered() {
    const note = slot("note").value.trim();
    if (state.pendingOther && note) {
      addFlag(state.pendingOther, "other", note);
      state.pendingOther = null;
    }
    slot("note").blur();
  }

  function addFlag(span, kind, note) {
    state.flags.push({ answer: span.answer, start: span.start, end: span.end, flag: kind, note: note });
    slot("note").value = "";
    state.found = null;
    window.getSelection().removeAllRanges();
    renderFlags();
    flagStatus("Marked as " + kind + ". Select more, or press s to submit.");
  }

  function removeFlag(index) {
    if (index < 0 || index >= state.flags.length) return;
    state.flags.splice(index, 1);
    renderFlags();
  }

  function paint(pre, text, spans) {
    const cuts = new Set([0, text.length]);
    for (const span of spans) {
      cuts.add(span.start);
      cuts.add(span.end);
    }
    const points = Array.from(cuts).sort((p, q) => p - q);
    const parts = [];
    for (let i = 0; i + 1 < points.length; i++) {
      const piece = text.slice(points[i], points[i + 1]);
      const cover = spans.find((s) => s.start <= points[i] && points[i + 1] <= s.end);
      if (cover) {
        const mark = document.createElement("mark");
        mark.dataset.kind = cover.flag;
        mark.textContent = piece;
        parts.push(mark);
      } else {
        parts.push(document.createTextNode(piece));
      }
    }
    pre.replaceChildren(...parts);
  }

  function renderFlags() {
    for (const pre of $$(".flag-text")) {
      const answer = answerOf(pre);
      paint(pre, answer.text, state.flags.filter((f) => f.answer === answer.letter));
    }
    const list = slot("flags");
    list.replaceChildren(
      ...state.flags.map(function (flag, index) {
        const item = document.createElement("li");
        const kind = document.createElement("span");
        kind.className = "badge";
        kind.textContent = flag.flag;
        const quote = document.createElement("q");
        const text = task.answers.find((a) => a.letter === flag.answer).text;
        const excerpt = text.slice(flag.start, flag.end);
        quote.textContent = excerpt.length > 120 ? excerpt.slice(0, 117) + "…" : excerpt;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "link-button";
        remove.dataset.removeFlag = String(index);
        remove.textContent = "Remove";
        item.append(kind, " in answer " + flag.answer + ": ", quote);
        if (flag.note) item.append(" — " + flag.note);
        item.append(" ", remove);
        return item;
      })
    );
    slot("no-flags").hidden = state.flags.length > 0;
  }

  // Flag buttons must not take the text selection away when clicked.
  root.addEventListener("mousedown", function (event) {
    if (event.target instanceof Element && event.target.closest("button[data-flag]")) {
      event.preventDefault();
    }
  });

  // --- Submitting, skipping, moving on

  async function submit() {
    if (!task || busy) return;
    if (submitted) {
      await advance();
      return;
    }
    const body = BUILD[task.kind]();
    if (typeof body === "string") {
      showError(body);
      return;
    }
    body.kind = task.kind;
    body.active_seconds = Math.min(clock.seconds(), 24 * 3600);
    busy = true;
    submitButton.disabled = true;
    hideError();
    let receipt;
    try {
      // ?next=true: the answer carries the next item, so the page moves on in one round trip.
      receipt = await tutelage.api("/api/v1/assignments/" + task.assignment_id + "/judgment?next=true", {
        method: "POST",
        body: body,
        idempotencyKey: idempotencyKey(task.assignment_id),
      });
    } catch (err) {
      busy = false;
      submitButton.disabled = false;
      showError(describe(err, "Your answer was not saved") + " Press s to try again.");
      return;
    }
    submitted = true;
    forget(task.assignment_id);
    if (receipt && receipt.next_error) {
      window.location.reload(); // a new NDA, or the qualification failed: the page says which
      return;
    }
    if (receipt && "next" in receipt) {
      moveTo(receipt.next);
      return;
    }
    await advance();
  }

  function moveTo(next) {
    if (next === null) {
      showDone();
      return;
    }
    renderTask(next);
    show(next);
    window.scrollTo(0, 0);
  }

  async function advance() {
    busy = true;
    submitButton.disabled = true;
    let next;
    try {
      next = await tutelage.api("/api/v1/projects/" + projectId + "/next", { method: "POST" });
    } catch (err) {
      busy = false;
      submitButton.disabled = false;
      if (err instanceof tutelage.ApiError && (err.status === 401 || err.status === 403)) {
        // Signed out, a new NDA, or the qualification failed: the page says which.
        window.location.reload();
        return;
      }
      showError(describe(err, "Saved, but the next item did not load") + " Press s to try again.");
      return;
    }
    moveTo(next);
  }

  function openSkip() {
    skipForm.hidden = false;
    skipReason.value = "";
    skipReason.focus();
  }

  function closeSkip() {
    skipForm.hidden = true;
  }

  async function skip() {
    const reason = skipReason.value.trim();
    if (!task || busy) return;
    if (!reason) {
      showError("Say why you skip this item, then press Enter.");
      return;
    }
    busy = true;
    try {
      await tutelage.api("/api/v1/assignments/" + task.assignment_id + "/skip", {
        method: "POST",
        body: { reason: reason },
      });
    } catch (err) {
      busy = false;
      showError(describe(err, "The item was not skipped"));
      return;
    }
    submitted = true;
    forget(task.assignment_id);
    closeSkip();
    await advance();
  }

  // --- Keys and clicks

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing || helpOpen()) return;
    const target = event.target;
    const key = event.key;
    if (target === skipReason) {
      if (key === "Escape") {
        event.preventDefault();
        closeSkip();
        skipReason.blur();
      } else if (key === "Enter") {
        event.preventDefault();
        skip();
      }
      return;
    }
    if (isTextField(target)) {
      if (key === "Escape") {
        event.preventDefault();
        target.blur();
      } else if (key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submit();
      } else if (key === "Enter" && target.dataset.slot === "find") {
        event.preventDefault();
        findNext(target.value);
      } else if (key === "Enter" && target.dataset.slot === "note") {
        event.preventDefault();
        noteEntered();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || !task) return;
    // Buttons and links keep Enter and Space; a focused radio group keeps its arrows.
    if ((key === "Enter" || key === " ") && target.closest("button, a, summary")) return;
    if (target.type === "radio" && key.startsWith("Arrow")) return;
    let handled = true;
    if (key === "s") submit();
    else if (key === "x") openSkip();
    else handled = KEYS[task.kind](key);
    if (handled) event.preventDefault();
  });

  root.addEventListener("click", function (event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target || !task) return;
    const flagButton = target.closest("button[data-flag]");
    if (flagButton) markSelection(flagButton.dataset.flag);
    const remove = target.closest("button[data-remove-flag]");
    if (remove) removeFlag(Number(remove.dataset.removeFlag));
    const item = target.closest(".rank-item");
    if (item) select(item, true);
  });

  root.addEventListener("focusin", function (event) {
    const item = event.target instanceof Element ? event.target.closest(".rank-item") : null;
    if (item && task && task.kind === "ranking") select(item, false);
  });

  root.addEventListener("change", function (event) {
    const target = event.target;
    if (!(target instanceof HTMLInputElement) || !task) return;
    if (target.name === "base") {
      chooseBase(task.answers.findIndex((a) => a.letter === target.value));
    }
    const criterion = target.closest(".criterion");
    if (criterion && task.kind === "rating") {
      state.current = $$(".criterion").indexOf(criterion);
      highlightCriterion();
    }
  });

  submitButton.addEventListener("click", submit);
  skipButton.addEventListener("click", openSkip);

  show(data.task);
})();
