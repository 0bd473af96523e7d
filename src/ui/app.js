// dialerd dashboard: asks for a token once (kept in sessionStorage, for
// this tab), then shows the view the address names, fetched as HTML from
// /ui/parts/... every two seconds. Buttons call the API's own routes.
"use strict";
const KEY = "dialerd-token";
const $ = (id) => document.getElementById(id);
let busy = false;

function token() { return sessionStorage.getItem(KEY); }

function signedIn(yes) {
  $("login").hidden = yes;
  $("logout").hidden = !yes;
  $("view").hidden = !yes;
  $("toolbar").hidden = !yes;
  if (!yes) { $("view").innerHTML = ""; $("token").focus(); }
}

function showError(text) {
  $("error").textContent = text || "";
  $("error").hidden = !text;
}

// The address of the part for the route in the location's hash.
function route() {
  const hash = location.hash.replace(/^#/, "") || "/campaigns";
  const [path, query] = hash.split("?");
  const one = path.match(/^\/campaigns\/([0-9a-f-]{36})$/);
  if (one) return { part: "/ui/parts/campaigns/" + one[1] + (query ? "?" + query : ""), campaign: one[1], query };
  if (path === "/lines") return { part: "/ui/parts/lines" };
  if (path === "/limits") return { part: "/ui/parts/limits" };
  return { part: "/ui/parts/campaigns" };
}

async function call(method, url) {
  const response = await fetch(url, { method, headers: { Authorization: "Bearer " + token() } });
  if (response.status === 401) { sessionStorage.removeItem(KEY); signedIn(false); throw new Error("the token was refused; sign in again"); }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

// The search box of a campaign's page, outside the part that refreshes.
function toolbar(r) {
  const bar = $("toolbar");
  if (!r.campaign) { bar.innerHTML = ""; bar.dataset.campaign = ""; return; }
  if (bar.dataset.campaign === r.campaign) return;
  bar.dataset.campaign = r.campaign;
  bar.innerHTML = '<form id="search"><a href="#/campaigns">← Campaigns</a> ' +
    '<input id="q" type="search" placeholder="External id or phone number"> <button type="submit">Search</button></form>';
  const q = new URLSearchParams(r.query || "").get("q");
  if (q) $("q").value = q;
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = "#/campaigns/" + r.campaign + "?q=" + encodeURIComponent($("q").value.trim());
  });
}

async function refresh() {
  if (!token()) { signedIn(false); return; }
  signedIn(true);
  if (busy) return;
  busy = true;
  const r = route();
  toolbar(r);
  try {
    const html = await (await call("GET", r.part)).text();
    if (route().part === r.part) $("view").innerHTML = html;
    showError("");
    $("live").textContent = "live · " + new Date().toLocaleTimeString();
  } catch (e) {
    showError(e.message);
  } finally {
    busy = false;
  }
}

document.addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    await call("POST", "/campaign/campaigns/" + button.dataset.campaign + "/" + button.dataset.action);
    showError("");
  } catch (err) {
    showError(button.dataset.action + ": " + err.message);
  }
  refresh();
});

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    refresh();
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); signedIn(false); });
  window.addEventListener("hashchange", refresh);
  setInterval(refresh, 2000);
  refresh();
});
