// Shared by the e-certificate pages: phone sign-in and a small API helper. No CDN, no build step.
"use strict";
const Ecert = (() => {
  const KEY = "superapp.token";
  const token = () => sessionStorage.getItem(KEY);

  async function api(method, path, body) {
    const headers = {};
    if (token()) headers.Authorization = "Bearer " + token();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = resp.headers.get("Content-Type")?.includes("json") ? await resp.json() : await resp.text();
    if (resp.status === 401) { sessionStorage.removeItem(KEY); }
    return { ok: resp.ok, status: resp.status, data };
  }

  // Renders a phone + code sign-in form into `box`; calls onSignedIn() once a token is held.
  function signIn(box, onSignedIn) {
    if (token()) { box.hidden = true; onSignedIn(); return; }
    box.hidden = false;
    box.innerHTML = `
      <h2>Sign in</h2>
      <label>Phone <input id="si-phone" autocomplete="tel" placeholder="+8613800000006"></label>
      <button id="si-send" type="button">Send code</button>
      <label>Code <input id="si-code" inputmode="numeric" maxlength="6"></label>
      <button id="si-go" type="button">Sign in</button>
      <p class="hint">Development: read the code with <code>superapp sms outbox --phone PHONE</code>.</p>
      <p id="si-msg" role="status"></p>`;
    const msg = box.querySelector("#si-msg");
    box.querySelector("#si-send").onclick = async () => {
      const r = await api("POST", "/api/v1/identity/otp", { phone: box.querySelector("#si-phone").value.trim() });
      msg.textContent = r.ok ? "Code sent." : (r.data.detail || "Could not send the code.");
    };
    box.querySelector("#si-go").onclick = async () => {
      const r = await api("POST", "/api/v1/identity/token", {
        grant_type: "otp", phone: box.querySelector("#si-phone").value.trim(),
        code: box.querySelector("#si-code").value.trim(),
      });
      if (!r.ok) { msg.textContent = r.data.detail || "Sign-in failed."; return; }
      sessionStorage.setItem(KEY, r.data.access_token);
      box.hidden = true;
      onSignedIn();
    };
  }

  function esc(s) {
    return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  return { api, signIn, esc, token };
})();
