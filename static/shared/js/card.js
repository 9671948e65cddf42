// The simulated My Number Card in the browser: unlock a key from the card file with WebCrypto
// (never extractable), sign the server's one-time challenge, and post the result with the CSRF token.
// The PIN, the password and the private key never leave this page. The try counters live in
// localStorage, so a reload does not reset them (docs/virtual-card.md: a protocol simulator).
(() => {
  "use strict";
  const form = document.getElementById("card-form");
  if (!form) return;
  const mode = form.dataset.mode; // "auth" (sign-in) or "link" (first signature)
  // A shared terminal (the city counter) never keeps one resident's card file for the next one.
  const remember = form.dataset.rememberCard !== "no";
  const msgs = JSON.parse(document.getElementById("card-messages").textContent);
  const status = document.getElementById("card-status");
  const csrf = form.querySelector("input[name=csrf_token]").value;
  const enc = new TextEncoder();
  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const fmt = (text, n) => text.replace("%(n)s", String(n));

  function show(message, kind) {
    status.textContent = message;
    status.className = "card-status card-status-" + (kind || "error");
    status.focus();
  }

  async function readCard() {
    const input = document.getElementById("card-file");
    if (input && input.files && input.files.length) {
      const text = await input.files[0].text();
      if (remember) sessionStorage.setItem("jpki-sim-card", text); // for the identity-link step after sign-in
      return JSON.parse(text);
    }
    const kept = remember ? sessionStorage.getItem("jpki-sim-card") : null;
    if (kept) return JSON.parse(kept);
    throw new Error("nofile");
  }

  const triesKey = (card, slot) => "jpki-sim:tries:" + card.cardId + ":" + slot;
  const triesLeft = (card, slot) => {
    const kept = localStorage.getItem(triesKey(card, slot));
    return kept === null ? card[slot].max_tries : Number(kept);
  };

  async function unlock(card, slot, secret) {
    const s = card[slot];
    const material = await crypto.subtle.importKey("raw", enc.encode(secret), "PBKDF2", false, ["deriveKey"]);
    const aesKey = await crypto.subtle.deriveKey(
      {name: "PBKDF2", hash: "SHA-256", salt: b64(s.kdf.salt), iterations: s.kdf.iter},
      material, {name: "AES-GCM", length: 256}, false, ["unwrapKey"]);
    return crypto.subtle.unwrapKey(
      "pkcs8", b64(s.wrappedKey), aesKey, {name: "AES-GCM", iv: b64(s.wrap.iv)},
      {name: "RSASSA-PKCS1-v1_5", hash: "SHA-256"}, false, ["sign"]);
  }

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return {ok: response.ok, data};
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  async function authToken(card, key, nonce) {
    // Web eID v2: sign SHA-256(origin) || SHA-256(nonce), the nonce as its base64 text.
    const data = new Uint8Array(64);
    data.set(await sha256(enc.encode(window.location.origin)), 0);
    data.set(await sha256(enc.encode(nonce)), 32);
    const sig = new Uint8Array(await crypto.subtle.sign({name: "RSASSA-PKCS1-v1_5"}, key, data));
    return {unverifiedCertificate: card.auth.cert, algorithm: "RS256", signature: btoa(String.fromCharCode(...sig)),
            format: "web-eid:1.0", appVersion: window.location.origin + "/jpki-sim/1.0.0"};
  }

  async function signedDocument(card, key, challenge) {
    // JWS compact, RS256, x5c = [signature certificate] (DESIGN.md, signed application).
    const header = b64url(enc.encode(JSON.stringify({alg: "RS256", x5c: [card.sign.cert]})));
    // The signing time and, for an application, its move id and parts come with the challenge and are signed too.
    const claims = {aud: challenge.aud, nonce: challenge.nonce, iat: challenge.iat ?? Math.floor(Date.now() / 1000)};
    if ("parts" in challenge) { claims.moveId = challenge.moveId; claims.parts = challenge.parts; }
    claims.application = challenge.application;
    const payload = b64url(enc.encode(JSON.stringify(claims)));
    const input = enc.encode(header + "." + payload);
    const sig = new Uint8Array(await crypto.subtle.sign({name: "RSASSA-PKCS1-v1_5"}, key, input));
    return header + "." + payload + "." + b64url(sig);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const slot = mode === "auth" ? "auth" : "sign";
    const field = document.getElementById(slot === "auth" ? "pin" : "sign-password");
    let secret = field.value.trim();
    let card;
    try {
      card = await readCard();
      if (card.format !== "jpki-sim-card" || !card[slot]) throw new Error("format");
    } catch (e) {
      show(e.message === "nofile" ? msgs.nofile : msgs.badfile);
      return;
    }
    if (triesLeft(card, slot) <= 0) { show(msgs.locked); return; }
    if (slot === "auth" && !/^[0-9]{4}$/.test(secret)) { show(msgs.pinformat); field.focus(); return; }
    if (slot === "sign") {
      secret = secret.toUpperCase();
      if (!/^[A-Z0-9]{6,16}$/.test(secret)) { show(msgs.passwordformat); field.focus(); return; }
    }
    show(msgs.working, "info");
    let key;
    try {
      key = await unlock(card, slot, secret);
    } catch (e) {
      const left = triesLeft(card, slot) - 1;
      localStorage.setItem(triesKey(card, slot), String(Math.max(left, 0)));
      field.value = "";
      show(left <= 0 ? msgs.locked : fmt(slot === "auth" ? msgs.wrongpin : msgs.wrongpassword, left));
      return;
    }
    localStorage.removeItem(triesKey(card, slot)); // a correct secret resets the counter
    field.value = "";
    const challenge = await postJson(form.dataset.challengeUrl);
    if (!challenge.ok) { show(challenge.data.message || msgs.failed); return; }
    const result = mode === "auth"
      ? await postJson(form.dataset.submitUrl, {authToken: await authToken(card, key, challenge.data.nonce)})
      : await postJson(form.dataset.submitUrl, {signedApplication: await signedDocument(card, key, challenge.data)});
    if (result.ok && result.data.redirect) {
      window.location.assign(result.data.redirect);
    } else {
      show(result.data.message || msgs.failed);
    }
  });
})();
