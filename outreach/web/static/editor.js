// The template editor's live preview: as the marketer types, the source goes to
// POST /templates/preview (at most one request in flight, ~300 ms after the last key)
// and the preview pane shows what comes back. Without this script the form's
// Preview button does the same with a page load.
"use strict";

(function () {
  const form = document.getElementById("editor");
  const pane = document.getElementById("preview");
  const status = document.getElementById("preview-status");
  if (!form || !pane) {
    return;
  }
  const source = form.querySelector("#source");
  const sample = form.querySelector("#sample");
  const path = form.querySelector("input[name=path]").value;
  const token = form.querySelector("input[name=csrf_token]").value;
  const url = form.dataset.previewUrl;
  const DELAY_MS = 300;
  let timer = null;
  let controller = null;
  let sent = 0;

  function say(text) {
    status.textContent = text;
  }

  async function refresh() {
    if (controller) {
      controller.abort(); // only the newest source matters
    }
    controller = new AbortController();
    const number = ++sent;
    say("updating…");
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        signal: controller.signal,
        headers: {
          "Content-Type": "application/json",
          "Accept": "application/json",
          "X-CSRF-Token": token,
        },
        body: JSON.stringify({ path: path, source: source.value, sample: Number(sample.value) }),
      });
      if (number !== sent) {
        return;
      }
      if (response.status === 401) {
        say("your session has ended: sign in again in another tab, then keep typing");
        return;
      }
      const answer = await response.json();
      if (!response.ok) {
        say(typeof answer.detail === "string" ? answer.detail : "the preview failed");
        return;
      }
      // The fragment is the server's own template, escaped there.
      pane.innerHTML = answer.fragment;
      pane.dataset.updated = String(number);
      say(answer.ok ? "up to date" : "up to date, with issues");
    } catch (error) {
      if (error.name !== "AbortError" && number === sent) {
        say("the preview could not be reached");
      }
    }
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, DELAY_MS);
  }

  source.addEventListener("input", later);
  sample.addEventListener("change", refresh);
  // The Preview button asks now, without leaving the page.
  const button = form.querySelector("button[value=preview]");
  if (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      clearTimeout(timer);
      refresh();
    });
  }
  // Clicking an issue selects its line in the source.
  pane.addEventListener("click", function (event) {
    const item = event.target.closest(".lint-issue[data-line]");
    const line = item ? Number(item.dataset.line) : 0;
    if (!line) {
      return;
    }
    const lines = source.value.split("\n");
    const start = lines.slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0);
    source.focus();
    source.setSelectionRange(start, start + (lines[line - 1] || "").length);
  });
})();
