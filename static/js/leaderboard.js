// Leaderboard live updates: the WebSocket delivers a hidden #lb-live element (out-of-band swap)
// describing the new snapshot; when it matches the board on screen, the board reloads itself
// through its own hx-get (debounced by hx-trigger="lb-refresh delay:300ms").
(function () {
  function onSwap(event) {
    var live = document.getElementById("lb-live");
    var board = document.getElementById("board");
    if (!live || !board || !live.dataset.at) return;
    var d = live.dataset;
    if (d.source === board.dataset.source && d.category === board.dataset.category &&
        d.style === board.dataset.style && d.at !== board.dataset.computed) {
      window.htmx.trigger(board, "lb-refresh");
    }
  }
  document.addEventListener("htmx:wsAfterMessage", function () { setTimeout(onSwap, 0); });
})();
