/* Arena page behaviour: live stream frames (see arena/streaming.py for the protocol), keyboard
 * shortcuts, Ctrl+Enter to send. htmx's ws extension owns the socket (and reconnects it);
 * HTML messages are htmx out-of-band swaps, JSON messages are stream frames handled here. */
(function () {
  "use strict";
  let socket = null;

  function cpLength(s) { let n = 0; for (const _ of s) n++; return n; }
  function cpSlice(s, from) { return Array.from(s).slice(from).join(""); }

  function pane(id) { return document.querySelector('[data-response="' + id + '"]'); }

  function resync() { if (socket) socket.send(JSON.stringify({ resync: true })); }

  function apply(frame) {
    const el = pane(frame.r);
    if (!el) return;
    const pre = el.querySelector("pre.stream");
    if (!pre) return; // already finished: the saved, rendered text is the truth
    let epoch = parseInt(el.dataset.epoch || "0", 10);
    if (frame.epoch < epoch) return; // an older attempt
    if (frame.epoch > epoch || el._cp === undefined) {
      if (frame.epoch > epoch) { pre.textContent = ""; el._cp = 0; }
      el.dataset.epoch = String(frame.epoch);
      if (el._cp === undefined) el._cp = cpLength(pre.textContent);
    }
    el.classList.remove("state-pending");
    el.classList.add("state-streaming");
    const badge = el.querySelector(".state-badge");
    if (badge) badge.textContent = "writing…";
    if (frame.k === "reset") { pre.textContent = ""; el._cp = 0; return; }
    const len = cpLength(frame.text);
    if (frame.k === "snapshot") {
      if (len >= el._cp) { pre.textContent = frame.text; el._cp = len; }
      return;
    }
    const end = frame.offset + len;
    if (end <= el._cp) return; // seen already
    if (frame.offset > el._cp) { resync(); return; } // a frame was lost: ask for the text so far
    pre.textContent += cpSlice(frame.text, el._cp - frame.offset);
    el._cp = end;
  }

  document.addEventListener("htmx:wsOpen", function (e) {
    socket = e.detail.socketWrapper;
    const s = document.getElementById("conn-state");
    if (s) { s.textContent = "live"; s.dataset.state = "open"; }
  });
  document.addEventListener("htmx:wsClose", function () {
    const s = document.getElementById("conn-state");
    if (s) { s.textContent = "reconnecting…"; s.dataset.state = "closed"; }
  });
  document.addEventListener("htmx:wsBeforeMessage", function (e) {
    const msg = e.detail.message;
    if (typeof msg === "string" && msg.charAt(0) === "{") {
      e.preventDefault();
      try { apply(JSON.parse(msg)); } catch (err) { console.error("bad frame", err); }
    }
  });
  // After a new turn or a regenerate swaps the conversation, catch up on frames sent meanwhile.
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.target && e.target.id === "conversation") resync();
  });

  const keys = { a: "vote-a", b: "vote-b", t: "vote-tie", x: "vote-both_bad", n: "new-round" };
  document.addEventListener("keydown", function (e) {
    const tag = (e.target.tagName || "").toLowerCase();
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && tag === "textarea") {
      e.preventDefault();
      const form = e.target.form;
      if (form) form.requestSubmit();
      return;
    }
    if (e.key === "Escape" && (tag === "textarea" || tag === "input")) { e.target.blur(); return; }
    if (tag === "textarea" || tag === "input" || tag === "select" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "/") {
      const f = document.getElementById("followup") || document.getElementById("prompt");
      if (f && !f.disabled) { e.preventDefault(); f.focus(); }
      return;
    }
    const id = keys[e.key.toLowerCase()];
    if (!id) return;
    const el = document.getElementById(id);
    if (el && !el.disabled) { e.preventDefault(); el.click(); }
  });
})();
