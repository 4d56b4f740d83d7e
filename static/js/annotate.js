// Annotator task page: drag-and-drop ranking (SortableJS), keyboard shortcuts, ties, autosave.
// No inline script (strict CSP): everything is wired here from data attributes.
(function () {
  "use strict";
  // invitation links: copy to the clipboard (falls back to selecting the text)
  document.querySelectorAll("[data-copy]").forEach((btn) => {
    btn.addEventListener("click", async () => {
      const field = document.querySelector(btn.dataset.copy);
      if (!field) return;
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
        btn.textContent = "Copied";
      } catch (e) {
        btn.textContent = "Press Ctrl+C";
      }
    });
  });

  const form = document.getElementById("answer-form");
  if (!form) return;
  const list = document.getElementById("ranking");
  const input = document.getElementById("ranking-input");
  const summary = document.getElementById("rank-summary");
  const timeInput = document.getElementById("time-input");
  const indicator = document.getElementById("autosave");
  const started = Date.now();
  const baseSpent = parseInt(timeInput.value || "0", 10) || 0;
  let touched = false;
  let selected = null;
  let saveTimer = null;

  const chips = () => (list ? Array.from(list.querySelectorAll(".rank-chip")) : []);

  function groups() {
    const out = [];
    chips().forEach((chip, i) => {
      if (i > 0 && chip.dataset.tie === "1") out[out.length - 1].push(chip);
      else out.push([chip]);
    });
    return out;
  }

  function render() {
    chips().forEach((chip, i) => {
      if (i === 0) chip.dataset.tie = "0";
      chip.classList.toggle("selected", chip === selected);
      chip.setAttribute("aria-selected", chip === selected ? "true" : "false");
    });
    const g = groups();
    // ties: every chip of a group of several is bracketed and shows its shared place with "="
    g.forEach((grp, rank) => {
      grp.forEach((chip, k) => {
        const tiedGroup = grp.length > 1;
        chip.classList.toggle("tied", k > 0);
        chip.classList.toggle("in-tie", tiedGroup);
        chip.classList.toggle("tie-first", tiedGroup && k === 0);
        chip.classList.toggle("tie-last", tiedGroup && k === grp.length - 1);
        const pos = chip.querySelector(".rank-pos");
        if (pos) {
          pos.textContent = String(rank + 1) + (tiedGroup ? "=" : "");
          pos.title = tiedGroup ? "Tied for place " + (rank + 1) : "Place " + (rank + 1);
        }
        chip.setAttribute(
          "aria-label",
          "Response " + chip.dataset.letter + ", place " + (rank + 1) + (tiedGroup ? ", tied" : "")
        );
      });
    });
    if (touched) {
      input.value = JSON.stringify(g.map((grp) => grp.map((c) => c.dataset.rid)));
      if (summary) summary.textContent = "Ranking: " + g.map((grp) => grp.map((c) => c.dataset.letter).join(" = ")).join(" > ");
    }
  }

  function changed() {
    touched = true;
    render();
    scheduleSave();
  }

  function select(chip) {
    selected = chip;
    if (chip) chip.focus({ preventScroll: true });
    render();
  }

  function move(delta) {
    if (!selected) return;
    const all = chips();
    const i = all.indexOf(selected);
    const j = i + delta;
    if (j < 0 || j >= all.length) return;
    if (delta < 0) list.insertBefore(selected, all[j]);
    else list.insertBefore(all[j], selected);
    changed();
    selected.focus({ preventScroll: true });
  }

  function toggleTie(chip) {
    if (!chip || chips().indexOf(chip) === 0) return;
    chip.dataset.tie = chip.dataset.tie === "1" ? "0" : "1";
    changed();
  }

  // restore a draft
  const initial = form.dataset.initialRanking;
  if (initial && list) {
    try {
      const byId = Object.fromEntries(chips().map((c) => [c.dataset.rid, c]));
      JSON.parse(initial).forEach((grp) => grp.forEach((rid, k) => {
        const chip = byId[rid];
        if (chip) { chip.dataset.tie = k > 0 ? "1" : "0"; list.appendChild(chip); }
      }));
      touched = true;
    } catch (e) { /* a broken draft is ignored */ }
  }
  render();

  if (list && window.Sortable) {
    window.Sortable.create(list, {
      animation: 120,
      forceFallback: true, // mouse/touch driven: same on phones and under automation
      fallbackTolerance: 3,
      onStart: (evt) => select(evt.item),
      onEnd: () => changed(),
    });
  }
  if (list) {
    list.addEventListener("click", (evt) => {
      const tie = evt.target.closest(".tie-toggle");
      const chip = evt.target.closest(".rank-chip");
      if (tie) toggleTie(chip);
      else if (chip) select(chip);
    });
  }

  // autosave: POST the form as a draft one second after the last change
  function scheduleSave() {
    clearTimeout(saveTimer);
    indicator.textContent = "Unsaved changes…";
    saveTimer = setTimeout(saveDraft, 1000);
  }

  function updateTime() {
    timeInput.value = String(baseSpent + (Date.now() - started));
  }

  async function saveDraft() {
    updateTime();
    const data = new FormData(form);
    data.set("action", "draft");
    try {
      // not form.action: the submit button named "action" shadows that property
      const res = await fetch(form.getAttribute("action") || window.location.href, {
        method: "POST",
        body: data,
        headers: { "HX-Request": "true" },
        credentials: "same-origin",
      });
      indicator.innerHTML = await res.text();
      indicator.classList.toggle("error", !res.ok);
    } catch (e) {
      indicator.textContent = "Offline: not saved";
      indicator.classList.add("error");
    }
  }

  document.querySelectorAll("[data-autosave]").forEach((el) => {
    el.addEventListener("change", scheduleSave);
  });

  form.addEventListener("submit", (evt) => {
    updateTime();
    clearTimeout(saveTimer);
    const type = form.dataset.taskType;
    const viaChoice = evt.submitter && evt.submitter.name === "choice";
    if (type !== "rate" && !viaChoice && !touched) {
      evt.preventDefault();
      if (summary) {
        summary.textContent = "Rank the responses first (drag them, or pick with 1-9 and move with arrows).";
        summary.classList.add("error");
      }
    }
  });

  document.addEventListener("keydown", (evt) => {
    const tag = (evt.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || evt.ctrlKey || evt.metaKey || evt.altKey) return;
    const all = chips();
    const key = evt.key;
    if (/^[1-9]$/.test(key)) {
      const letter = "ABCDEFGHI"[parseInt(key, 10) - 1];
      const chip = all.find((c) => c.dataset.letter === letter);
      if (chip) { evt.preventDefault(); select(chip); }
    } else if (key === "ArrowUp" || key === "k" || key === "K") {
      evt.preventDefault(); move(-1);
    } else if (key === "ArrowDown" || key === "j" || key === "J") {
      evt.preventDefault(); move(1);
    } else if (key === "=") {
      evt.preventDefault(); toggleTie(selected);
    } else if (key === "s" || key === "S") {
      evt.preventDefault();
      const panel = document.getElementById("skip-panel");
      panel.open = true;
      const reason = panel.querySelector("select");
      if (reason) reason.focus();
    } else if (key === "Enter" && tag !== "button" && tag !== "summary") {
      evt.preventDefault();
      form.requestSubmit(document.getElementById("submit-btn"));
    }
  });
})();
