// swarm: the board refreshes itself, and "/" jumps to the search box. Everything works without it.
"use strict";

function refreshBoard(board) {
  const stamp = document.getElementById("refreshed");
  async function tick() {
    if (document.hidden) return;
    try {
      const response = await fetch(board.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected || response.status === 401) { window.location.assign("/login?next=/"); return; }
      if (!response.ok) throw new Error(response.status);
      const html = await response.text();
      if (html !== board.dataset.last) { board.innerHTML = html; board.dataset.last = html; }
      if (stamp) stamp.textContent = "Last refreshed " + new Date().toLocaleTimeString() + ".";
    } catch (err) {
      if (stamp) stamp.textContent = "Could not refresh (" + err.message + "); retrying.";
    }
  }
  setInterval(tick, 5000);
  document.addEventListener("visibilitychange", tick);
}

document.addEventListener("DOMContentLoaded", () => {
  const board = document.querySelector("[data-refresh]");
  if (board) refreshBoard(board);
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    const box = document.getElementById("q");
    if (event.key === "/" && !typing && box) { event.preventDefault(); box.focus(); box.select(); }
  });
  // Choosing a side or an attribute picks its action, so the keyboard path is one select.
  for (const select of document.querySelectorAll(".decide select")) {
    select.addEventListener("change", () => {
      const radio = select.closest(".choice").querySelector("input[type=radio]");
      if (radio) radio.checked = true;
    });
  }
});
