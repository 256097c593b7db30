// flexledger dashboard: live counters over server-sent events, in-place refresh of the page's
// live part, and the in-browser proof check (eth_call to the chain). No build step.
"use strict";
(function () {
  window.__flexEvents = [];
  const status = document.getElementById("live-status");
  const view = document.body.dataset.view;
  let refreshing = false, pending = false, lastRefresh = 0, timer = null;

  function setCounters(snap) {
    for (const el of document.querySelectorAll("[data-live]")) {
      const v = snap[el.dataset.live];
      if (v !== undefined) el.textContent = String(v);
    }
  }

  async function refresh() {
    if (refreshing) { pending = true; return; }
    refreshing = true; lastRefresh = Date.now();
    try {
      const r = await fetch(location.pathname + location.search, { headers: { "X-Partial": "1" } });
      if (r.ok) {
        const main = document.getElementById("live");
        const y = window.scrollY;
        main.innerHTML = await r.text();
        window.scrollTo(0, y);
        bindPickers();
      }
    } catch (e) { /* the next event retries */ }
    refreshing = false;
    if (pending) { pending = false; setTimeout(refresh, 3000); }
  }

  // One event stream per page, closed when the page is hidden: a page kept in the
  // back/forward cache would otherwise hold its connection, and six of them exhaust the
  // browser's connections to this host (the next navigation then stalls for a minute).
  let es = null;
  function connect() {
    if (!window.EventSource || es) return;
    es = new EventSource("/events");
    es.onopen = () => { status.textContent = "● live"; status.className = "live ok"; };
    es.onerror = () => { status.textContent = "● reconnecting"; status.className = "live down"; };
    const onEvent = (kind) => (ev) => {
      const data = JSON.parse(ev.data);
      window.__flexEvents.push({ kind, at: Date.now(), seq: data.seq, changed: data.changed,
                                 views: data.views, snapshot: data.snapshot });
      setCounters(data.snapshot);
      if (kind === "update" && view && (data.views || []).includes(view)) {
        // at most one refresh every 4 s; the last update is never left out
        const wait = 4000 - (Date.now() - lastRefresh);
        if (wait <= 0) refresh();
        else if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, wait);
      }
    };
    es.addEventListener("snapshot", onEvent("snapshot"));
    es.addEventListener("update", onEvent("update"));
  }
  window.addEventListener("pagehide", () => { if (es) { es.close(); es = null; } });
  window.addEventListener("pageshow", connect);
  connect();

  // ---- the proof check ------------------------------------------------------------------
  const W = (hex) => hex.replace(/^0x/, "").padStart(64, "0");
  const u = (n) => W(BigInt(n).toString(16));
  const i64 = (n) => { let b = BigInt(n); if (b < 0n) b = (1n << 256n) + b; return W(b.toString(16)); };
  const arr = (xs) => u(xs.length) + xs.map(W).join("");

  async function ethCall(rpc, to, data) {
    const r = await fetch(rpc, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_call",
                             params: [{ to, data }, "latest"] }) });
    const body = await r.json();
    if (body.error) throw new Error(body.error.message || JSON.stringify(body.error));
    return body.result;
  }

  let proof = null;
  async function fetchProof(pod, t) {
    const err = document.getElementById("proof-error");
    err.textContent = ""; document.getElementById("proof-verdict").textContent = "";
    document.getElementById("proof-body").hidden = true;  // no stale proof while fetching
    const r = await fetch(`/api/proof?pod=${encodeURIComponent(pod)}&t_s=${t}`);
    const body = await r.json();
    if (!r.ok) { err.textContent = body.error ? body.error.code + ": " + body.error.message : r.status; return; }
    proof = body;
    const s = body.sample;
    for (const [id, v] of [["ps-t", s.t_s], ["ps-seq", s.seq], ["ps-q", s.q_var], ["ps-v", s.v_mv],
                           ["ps-status", body.status], ["ps-anchor", body.batch ? "in concentrator batch " + body.batch.batch_id : (body.anchor || "-")],
                           ["ps-window", new Date(body.window_start_s * 1000).toISOString().slice(11, 16)]]) {
      document.getElementById(id).textContent = String(v);
    }
    document.getElementById("ps-p").value = s.p_w;
    document.getElementById("proof-json").textContent = JSON.stringify(
      { leaf: body.leaf, proof: body.proof, window_root: body.window_root, batch: body.batch,
        contract: body.contract, rpc: body.rpc_url }, null, 1);
    document.getElementById("proof-body").hidden = false;
  }

  async function verify() {
    const out = document.getElementById("proof-verdict");
    out.textContent = "asking the chain…"; out.className = "verdict";
    try {
      const s = proof.sample, sel = proof.selectors;
      const p = document.getElementById("ps-p").value;
      // the leaf of the sample as shown (edit P to see a changed sample fail), by the contract
      const leaf = await ethCall(proof.rpc_url, proof.contract,
        sel.sampleLeaf + W(proof.pod_id) + u(s.t_s) + i64(p) + i64(s.q_var) + u(s.v_mv) + u(s.seq));
      let data;
      if (proof.batch) {
        const b = proof.batch, w = b.window;
        const head = 10 * 32, off1 = head, off2 = head + 32 * (1 + b.window_proof.length);
        data = sel.verifyBatched + W(b.concentrator) + u(b.batch_id) + W(proof.pod_id) +
          u(w.window_start_s) + W(w.root) + u(w.sample_count) + W(w.setpoints_hash || "0x0") +
          u(off1) + W(leaf) + u(off2) + arr(b.window_proof) + arr(proof.proof);
      } else {
        data = sel.verify + W(proof.pod_id) + u(proof.window_start_s) + W(leaf) + u(4 * 32) + arr(proof.proof);
      }
      const ok = BigInt(await ethCall(proof.rpc_url, proof.contract, data)) === 1n;
      out.textContent = ok ? "valid" : "invalid";
      out.className = "verdict " + (ok ? "valid" : "invalid");
      out.dataset.leaf = leaf;
    } catch (e) {
      out.textContent = "error: " + e.message; out.className = "verdict invalid";
    }
  }

  function bindPickers() {
    for (const b of document.querySelectorAll("button.pick")) {
      b.onclick = () => {
        const f = document.getElementById("proof-form");
        f.pod.value = b.dataset.pod; f.t_s.value = b.dataset.t;
        fetchProof(b.dataset.pod, b.dataset.t);
        document.getElementById("proof").scrollIntoView();
      };
    }
  }
  const form = document.getElementById("proof-form");
  if (form) {
    form.addEventListener("submit", (e) => { e.preventDefault(); fetchProof(form.pod.value, form.t_s.value); });
    document.getElementById("proof-verify").addEventListener("click", verify);
    bindPickers();
  }
})();
